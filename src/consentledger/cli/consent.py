"""`consentledger consent`: a data subject signs a consent (or its revocation) and a gateway relays it.

Also holds the small pieces the gateway commands (`record`, `access`) share: the `--gateway` option,
JSON output, consent files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount

from consentledger.cli.common import load_signer, parse_duration
from consentledger.client import GatewayClient, parse_address, parse_record_id
from consentledger.consent import NO_RECORD, Consent
from consentledger.crypto.files import write_private_file
from consentledger.errors import ConfigurationError, KeystoreError

app = typer.Typer(help="Consents: a data subject grants or revokes, a gateway relays.", no_args_is_help=True)

GatewayOption = Annotated[
    str,
    typer.Option("--gateway", envvar="CONSENTLEDGER_GATEWAY", help="Gateway base URL, e.g. http://127.0.0.1:8000."),
]
SubjectKeystoreOption = Annotated[
    Path | None,
    typer.Option("--subject-keystore", help="The data subject's keystore (eth-account v3 JSON).", show_default=False),
]
SubjectPasswordEnvOption = Annotated[
    str, typer.Option("--subject-password-env", help="Environment variable holding the subject keystore's password.")
]
SubjectDevAccountOption = Annotated[
    int | None,
    typer.Option("--subject-dev-account", help="Use local dev account N as the subject (test chains only)."),
]
ConsentFileOption = Annotated[
    Path, typer.Option("--consent-file", help="A consent written by `consent grant --out`.")
]
SUBJECT_PASSWORD_ENV = "CONSENTLEDGER_SUBJECT_PASSWORD"


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout (no markup: JSON brackets are not rich tags)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def write_output(path: Path, data: Any, what: str) -> None:
    """Write `data` as JSON to `path`, readable by its owner only (it may hold personal data)."""
    encoded = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        write_private_file(path, encoded, overwrite=True, what=what)
    except KeystoreError as exc:
        raise ConfigurationError(str(exc)) from None


def read_consent(path: Path) -> Consent:
    """Return the consent in a file written by `consent grant --out` (`Consent.to_json()` form)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read consent file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigurationError(f"consent file {path} is not JSON") from None
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return Consent.from_json(data)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"consent file {path} does not hold a consent: {exc}") from None


def subject_signer(keystore: Path | None, password_env: str, dev_account: int | None) -> LocalAccount:
    """Return the data subject's account from `--subject-keystore` or `--subject-dev-account`."""
    if (keystore is None) == (dev_account is None):
        raise ConfigurationError(
            f"give the subject's key: --subject-keystore FILE (password in ${password_env}) "
            "or, on a local test chain, --subject-dev-account N (not both)"
        )
    return load_signer(keystore, password_env, dev_account)


@app.command("grant")
def grant(
    grantee: Annotated[str, typer.Option(help="The organisation (signer address) the consent is for.")],
    category: Annotated[int, typer.Option(min=0, max=65535, help="Data category id.")],
    purpose: Annotated[int, typer.Option(min=0, max=255, help="Purpose id.")],
    gateway: GatewayOption,
    record: Annotated[str, typer.Option(help="Limit the consent to one record id (0x + 64 hex).")] = "",
    valid_for: Annotated[str, typer.Option(help="How long it stays valid: 3600, 12h, 7d, 2w.")] = "7d",
    max_uses: Annotated[int, typer.Option(min=1, help="How many accesses it allows.")] = 1,
    identified: Annotated[bool, typer.Option(help="Allow identifying fields to be released.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the consent JSON here (for access, revoke).")] = None,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Sign a consent with the subject's key and have the gateway register it on chain.

    Terms the gateway's catalog refuses (an unknown category or purpose, a purpose the category does
    not allow or past its sunset) exit 13 naming what is allowed, before anything is signed."""
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    consent = Consent.new(
        subject=account.address,
        grantee=parse_address(grantee, "--grantee"),
        category=category,
        purpose=purpose,
        valid_until=int(time.time()) + parse_duration(valid_for),
        max_uses=max_uses,
        record=bytes(parse_record_id(record)) if record else NO_RECORD,
        identified=identified,
    )
    with GatewayClient(gateway, account) as client:
        client.check_terms(consent)  # off the catalog: refused before anything is written, signed or sent
        if out is not None:
            # Written before relaying: a granted consent whose terms (random nonce) were lost could be
            # neither used nor revoked.
            write_output(out, consent.to_json(), "consent file")
        print_json(client.sign_and_grant(consent, check_catalog=False))


@app.command("revoke")
def revoke(
    consent_file: ConsentFileOption,
    gateway: GatewayOption,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Sign the revocation of a consent with the subject's key and have the gateway record it."""
    consent = read_consent(consent_file)
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(client.sign_and_revoke(consent))
