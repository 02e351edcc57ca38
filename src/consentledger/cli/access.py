"""`consentledger access`: ask this organisation's gateway for a record under consent, a mandate or an override."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.markup import escape

from consentledger.cli.common import DevAccountOption, KeystoreOption, PasswordEnvOption, signer
from consentledger.cli.consent import GatewayOption, print_json, read_consent, write_output
from consentledger.client import AccessAsk, GatewayClient
from consentledger.consent import Consent
from consentledger.errors import ConfigurationError, GatewayError, GatewayUnavailableError

app = typer.Typer(help="Access records for a purpose, under the subjects' consents.", no_args_is_help=True)


RecordOption = Annotated[str | None, typer.Option(help="Record id (0x + 64 hex).")]
PurposeOption = Annotated[int | None, typer.Option(min=0, max=255, help="Purpose id.")]
BatchOption = Annotated[
    Path | None,
    typer.Option(help="A JSON list of accesses ({record, purpose, consents, pseudonymise}) to ask for at once, "
                 "instead of --record/--purpose; writes one answer per access."),
]
ConsentFileOption = Annotated[
    list[Path] | None, typer.Option(help="A consent written by `consent grant --out`; repeat for derived records.")
]
MandateOption = Annotated[
    int | None, typer.Option(min=1, help="Ask under this statutory mandate (its id) instead of consents.")
]
JustificationOption = Annotated[
    str | None, typer.Option(help="An emergency override without consent, justified by this text (the client "
                                  "needs the emergency role); an auditor reviews it.")
]
JustificationFileOption = Annotated[
    Path | None, typer.Option(help="As --override-justification, the text read from this UTF-8 file.")
]
OutOption = Annotated[Path | None, typer.Option(help="Write the payload JSON here instead of stdout.")]
PseudonymiseOption = Annotated[
    bool, typer.Option(help="Replace identifying fields by pseudonyms (stable for this org), not remove them.")
]


@app.command("request")
def request(
    gateway: GatewayOption,
    record: RecordOption = None,
    purpose: PurposeOption = None,
    batch: BatchOption = None,
    consent_file: ConsentFileOption = None,
    mandate: MandateOption = None,
    override_justification: JustificationOption = None,
    override_justification_file: JustificationFileOption = None,
    out: OutOption = None,
    pseudonymise: PseudonymiseOption = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Ask with this Idempotency-Key (default: a new one, named in the error if the access "
                     "fails, to resume it with `access resume`)."),
    ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Record the access on chain, receive the record and write its plaintext payload JSON.

    Where the access was recorded (sequence number, transaction, block) goes to stderr. With
    --batch, every access in the file is recorded (together) and the answers are written as a JSON
    list, one per access in order: the released record, or its refusal ({status, error, detail});
    the exit code is then 0 only if every access was answered with its record. Every access is asked
    with an Idempotency-Key, so `access resume --idempotency-key` never records it twice.
    """
    key = idempotency_key or str(uuid.uuid4())
    justification = _justification(override_justification, override_justification_file)
    bases = [name for name, given in (("--consent-file", bool(consent_file)), ("--mandate", mandate is not None),
                                      ("--override-justification", justification is not None)) if given]
    if len(bases) > 1:
        raise ConfigurationError(f"give one legal basis: {' or '.join(bases)}, not both")
    account = signer(keystore, password_env, dev_account)
    with resumable(key):
        if batch is not None:
            if record is not None or purpose is not None or bases:
                raise ConfigurationError("give either --batch or --record/--purpose with one legal basis, not both "
                                         "(a batch is under consent)")
            _request_batch(gateway, batch, out, account, key)
            return
        if record is None or purpose is None:
            raise ConfigurationError("give --record and --purpose (or --batch FILE)")
        consents = [read_consent(path) for path in consent_file or []]
        with GatewayClient(gateway, account) as client:
            result = client.request_access(record, purpose, consents, pseudonymise=pseudonymise, idempotency_key=key,
                                           mandate=mandate, override_justification=justification)
    _write_answer(result, out)


def _justification(text: str | None, path: Path | None) -> str | None:
    """Return the override's justification from --override-justification or its file (one of them, or None)."""
    if text is not None and path is not None:
        raise ConfigurationError("give --override-justification or --override-justification-file, not both")
    if path is None:
        return text
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"cannot read justification file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"justification file {path} is not UTF-8 text") from None


@app.command("resume")
def resume(
    gateway: GatewayOption,
    record: RecordOption = None,
    seq: Annotated[int | None, typer.Option(min=1, help="The access's seq on chain, as the failed access named it.")]
    = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="The key the failed `access request` used (give its other options again).")
    ] = None,
    purpose: PurposeOption = None,
    batch: BatchOption = None,
    consent_file: ConsentFileOption = None,
    mandate: MandateOption = None,
    override_justification: JustificationOption = None,
    override_justification_file: JustificationFileOption = None,
    out: OutOption = None,
    pseudonymise: PseudonymiseOption = False,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Receive the record of an access already asked for, whose record did not arrive; nothing is recorded twice.

    With --idempotency-key and the failed request's other options (--record, --purpose, its basis
    --consent-file / --mandate / --override-justification, --pseudonymise, or --batch), the request
    is retried: the gateway answers the access it recorded. With --record and --seq (and the
    consents the access presented; none under a mandate or override), the access on chain is
    answered by its place in the record's chain; only the client that made it may.
    """
    if (idempotency_key is None) == (seq is None):
        raise ConfigurationError("give --idempotency-key (with the request's options) or --record and --seq")
    if idempotency_key is not None:
        request(gateway, record, purpose, batch, consent_file, mandate, override_justification,
                override_justification_file, out, pseudonymise, idempotency_key, keystore, password_env, dev_account)
        return
    if record is None or seq is None or purpose is not None or batch is not None:
        raise ConfigurationError("--seq names an access by --record and --seq, without --purpose or --batch")
    if mandate is not None or override_justification is not None or override_justification_file is not None:
        raise ConfigurationError("--seq resumes the access on chain, which names its basis: give no --mandate or "
                                 "--override-justification")
    consents = [read_consent(path) for path in consent_file or []]
    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        result = client.resume_access(record, seq, consents, pseudonymise=pseudonymise)
    _write_answer(result, out)


@contextmanager
def resumable(key: str) -> Iterator[None]:
    """Name `key` in a failure after which the access may be on chain (a 5xx, no answer), to resume it with."""
    hint = (f" (asked with Idempotency-Key {key}; to resume without recording it twice: consentledger access resume "
            f"--idempotency-key {key} with the same options)")
    try:
        yield
    except GatewayUnavailableError as exc:
        raise GatewayUnavailableError(exc.url, exc.reason + hint) from None
    except GatewayError as exc:
        if exc.status < 500:
            raise
        raise GatewayError(exc.status, exc.code, exc.detail + hint, exc.rule) from None


def _write_answer(result: dict[str, Any], out: Path | None) -> None:
    if out is None:
        print_json(result.get("payload"))
    else:
        write_output(out, result.get("payload"), "payload file")
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        escape(
            f"access #{result.get('seq')} to record {result.get('record')} recorded in tx {result.get('tx')} "
            f"(block {result.get('block')}) by actor {result.get('actor')}"
        )
    )


def _request_batch(gateway: str, batch: Path, out: Path | None, account: LocalAccount, key: str) -> None:
    asks = read_batch(batch)
    with GatewayClient(gateway, account) as client:
        answers = client.request_access_batch(asks, idempotency_key=key)
    if out is None:
        print_json(answers)
    else:
        write_output(out, answers, "answers file")
    refused = [(i, a) for i, a in enumerate(answers) if a.get("status") != 200]
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(escape(f"{len(answers) - len(refused)} of {len(answers)} accesses answered with their record"))
    for index, answer in refused:
        console.print(escape(f"access {index + 1} ({answer.get('record', asks[index].record)}): "
                             f"{answer.get('error')}: {answer.get('detail')}"))
    if refused:
        if any(a.get("on_chain") for _, a in refused):
            console.print(escape(f"asked with Idempotency-Key {key}; to ask again for those on chain, recording "
                                 f"nothing twice: consentledger access resume --idempotency-key {key} --batch {batch}"))
        raise typer.Exit(GatewayError.exit_code)


def read_batch(path: Path) -> list[AccessAsk]:
    """Return the accesses a batch file asks for; a consent is a consent file's path (relative to it) or its terms."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read batch file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ConfigurationError(f"batch file {path} is not JSON") from None
    if not isinstance(data, list) or not data:
        raise ConfigurationError(f"batch file {path} must hold a non-empty JSON list of accesses")
    asks: list[AccessAsk] = []
    for number, item in enumerate(data, start=1):
        try:
            if not isinstance(item, dict):
                raise TypeError("not a JSON object")
            consents = tuple(
                read_consent(path.parent / c) if isinstance(c, str) else Consent.from_json(c)
                for c in item.get("consents", [])
            )
            asks.append(AccessAsk(str(item["record"]), int(item["purpose"]), consents, bool(item.get("pseudonymise"))))
        except KeyError as exc:
            raise ConfigurationError(f"batch file {path}, access {number}: no {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"batch file {path}, access {number}: {exc}") from None
    return asks
