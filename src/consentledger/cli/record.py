"""`consentledger record`: store a record through this organisation's gateway, look one up; a subject attests one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from consentledger.cli.common import DevAccountOption, KeystoreOption, PasswordEnvOption, signer, split_list
from consentledger.cli.consent import (
    SUBJECT_PASSWORD_ENV,
    GatewayOption,
    SubjectDevAccountOption,
    SubjectKeystoreOption,
    SubjectPasswordEnvOption,
    print_json,
    subject_signer,
)
from consentledger.client import GatewayClient
from consentledger.errors import ConfigurationError

app = typer.Typer(
    help="Records held by this organisation's gateway: store, look up; a data subject attests one.",
    no_args_is_help=True,
)


def read_payload(source: str) -> dict[str, Any]:
    """Return the JSON object in file `source`, or on stdin for "-"."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read payload file {source}: {exc.strerror or exc}") from None
    try:
        payload = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"payload {source} is not JSON") from None
    if not isinstance(payload, dict):
        raise ConfigurationError(f"payload {source} must be a JSON object of field: value")
    return payload


@app.command("put")
def put(
    subject: Annotated[str, typer.Option(help="The data subject's (pseudonymous) address.")],
    category: Annotated[int, typer.Option(min=0, max=65535, help="Data category id.")],
    payload_file: Annotated[str, typer.Option(help="JSON object of field: value; - reads stdin.")],
    gateway: GatewayOption,
    derived_from: Annotated[str, typer.Option(help="Comma-separated ids of the records this derives from.")] = "",
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retry-safe key: a retry with it returns the first answer.")
    ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Store a record (encrypted by the gateway, committed on chain) and print the gateway's answer."""
    payload = read_payload(payload_file)
    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        result = client.put_record(
            subject, category, payload, derived_from=split_list(derived_from), idempotency_key=idempotency_key
        )
    print_json(result)


@app.command("put-aggregate")
def put_aggregate(
    category: Annotated[int, typer.Option(min=0, max=65535, help="Data category id (its K must be > 0).")],
    payload_file: Annotated[str, typer.Option(help="JSON object of field: value; - reads stdin.")],
    derived_from: Annotated[str, typer.Option(help="Comma-separated ids of the records it aggregates.")],
    gateway: GatewayOption,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retry-safe key: a retry with it returns the first answer.")
    ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Store an anonymous aggregate of records covering at least the category's K distinct subjects.

    It names no subject and is shared with active requesters without consent while its sources live.
    """
    payload = read_payload(payload_file)
    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        result = client.put_aggregate(category, payload, split_list(derived_from), idempotency_key=idempotency_key)
    print_json(result)


@app.command("get")
def get(
    record: Annotated[str, typer.Argument(help="Record id (0x + 64 hex).")],
    gateway: GatewayOption,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Print one of this organisation's records: state, commitment, category, subject."""
    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        print_json(client.get_record(record))


@app.command("attest")
def attest(
    record: Annotated[str, typer.Option("--record", help="Id (0x + 64 hex) of a record held about the subject.")],
    gateway: GatewayOption,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Sign, as the record's data subject, EIP-712 RecordAttestation over its on-chain terms and relay it.

    Only attested records count toward an anonymous aggregate's K distinct subjects.
    """
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(client.attest_record(record))
