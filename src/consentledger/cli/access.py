"""`consentledger access`: ask this organisation's gateway for a record under consent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.markup import escape

from consentledger.cli.common import DevAccountOption, KeystoreOption, PasswordEnvOption, signer
from consentledger.cli.consent import GatewayOption, print_json, read_consent, write_output
from consentledger.client import AccessAsk, GatewayClient
from consentledger.consent import Consent
from consentledger.errors import ConfigurationError, GatewayError

app = typer.Typer(help="Access records for a purpose, under the subjects' consents.", no_args_is_help=True)


@app.command("request")
def request(
    gateway: GatewayOption,
    record: Annotated[str | None, typer.Option(help="Record id (0x + 64 hex).")] = None,
    purpose: Annotated[int | None, typer.Option(min=0, max=255, help="Purpose id.")] = None,
    batch: Annotated[
        Path | None,
        typer.Option(help="A JSON list of accesses ({record, purpose, consents, pseudonymise}) to ask for at once, "
                     "instead of --record/--purpose; writes one answer per access."),
    ] = None,
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

    Where the access was recorded (sequence number, transaction, block) goes to stderr. With
    --batch, every access in the file is recorded (together) and the answers are written as a JSON
    list, one per access in order: the released record, or its refusal ({status, error, detail});
    the exit code is then 0 only if every access was answered with its record.
    """
    if batch is not None:
        if record is not None or purpose is not None or consent_file:
            raise ConfigurationError("give either --batch or --record/--purpose/--consent-file, not both")
        _request_batch(gateway, batch, out, signer(keystore, password_env, dev_account))
        return
    if record is None or purpose is None:
        raise ConfigurationError("give --record and --purpose (or --batch FILE)")
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


def _request_batch(gateway: str, batch: Path, out: Path | None, account: LocalAccount) -> None:
    asks = read_batch(batch)
    with GatewayClient(gateway, account) as client:
        answers = client.request_access_batch(asks)
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
