"""`consentledger subject`: a data subject's own requests to a gateway, signed with their own key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from consentledger.cli.common import console
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
from consentledger.errors import ErasureIncompleteError

app = typer.Typer(help="A data subject's requests: live consents, erasure, history, receipts.", no_args_is_help=True)


@app.command("consents")
def consents(
    gateway: GatewayOption,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Print the subject's live consents (granted, not revoked, not expired) as the gateway's index has them."""
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(client.my_consents())


@app.command("erase")
def erase(
    gateway: GatewayOption,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Erase the subject's records at this gateway's agency and revoke every consent they gave.

    Signs a revocation of each live consent with the subject's key, then asks the gateway to
    crypto-shred and tombstone (ERASURE) the subject's records and relay the revocations; prints
    each record and consent affected, with where its tombstone / revocation is: on chain (tx hash and
    block), queued, sent, or failed. Exits with ErasureIncompleteError's code if any failed on chain.
    """
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        answer = client.request_erasure()
    print_json(answer)
    failed = [f"revocation of consent {c['consent']}: {c.get('error')}"
              for c in answer["consents"] if c["revocation"] == "failed"]
    failed += [f"tombstone of record {r['record']}" for r in answer["records"] if r["tombstone"] == "failed"]
    if failed:
        raise ErasureIncompleteError("erasure incomplete, failed on chain: " + "; ".join(failed))


@app.command("history")
def history(
    gateway: GatewayOption,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Print the subject's history: every access to their records, each record's head, and each tombstone."""
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        print_json(client.my_history())


@app.command("receipt")
def receipt(
    gateway: GatewayOption,
    record: Annotated[str, typer.Option(help="The record's id (0x + 64 hex).")],
    seq: Annotated[int, typer.Option(min=1, help="The access's seq.")],
    out: Annotated[Path, typer.Option(help="Where to write the receipt (JSON).")],
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Save the offline receipt of an access to one of your records; `consentledger receipt verify` checks it."""
    account = subject_signer(subject_keystore, subject_password_env, subject_dev_account)
    with GatewayClient(gateway, account) as client:
        answer = client.receipt(record, seq)
    out.write_text(json.dumps(answer, indent=2) + "\n", encoding="utf-8")
    console.print(f"receipt of access {seq} to record {record} (block {answer['block_number']}) → {out}")
