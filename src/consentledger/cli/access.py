"""`consentledger access`: ask this organisation's gateway for a record under consent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from consentledger.cli.common import DevAccountOption, KeystoreOption, PasswordEnvOption, signer
from consentledger.cli.consent import GatewayOption, print_json, read_consent, write_output
from consentledger.client import GatewayClient

app = typer.Typer(help="Access records for a purpose, under the subjects' consents.", no_args_is_help=True)


@app.command("request")
def request(
    record: Annotated[str, typer.Option(help="Record id (0x + 64 hex).")],
    purpose: Annotated[int, typer.Option(min=0, max=255, help="Purpose id.")],
    gateway: GatewayOption,
    consent_file: Annotated[
        list[Path] | None,
        typer.Option(help="A consent written by `consent grant --out`; repeat for derived records."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the payload JSON here instead of stdout.")] = None,
    pseudonymise: Annotated[
        bool, typer.Option(help="Replace identifying fields by pseudonyms (stable for this org), not remove them.")
    ] = False,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Record the access on chain, receive the record and write its plaintext payload JSON.

    Where the access was recorded (sequence number, transaction, block) goes to stderr.
    """
    consents = [read_consent(path) for path in consent_file or []]
    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        result = client.request_access(record, purpose, consents, pseudonymise=pseudonymise)
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
