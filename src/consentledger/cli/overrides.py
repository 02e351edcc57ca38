"""`consentledger override-policy` and `consentledger override`: the emergency override's rules and reviews."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from consentledger import governance
from consentledger.cli.common import (
    DEFAULT_MANIFEST,
    DEFAULT_RPC,
    DevAccountOption,
    KeystoreOption,
    ManifestOption,
    PasswordEnvOption,
    RpcOption,
    console,
    open_ledger,
    parse_duration,
    show_time,
    signer,
    split_list,
)
from consentledger.cli.consent import print_json
from consentledger.cli.org import submit
from consentledger.errors import ConfigurationError, ContractRevertError
from consentledger.legal_bases import read_directory
from consentledger.overrides import Override, read_overrides

policy_app = typer.Typer(help="The emergency override policy: which purposes, how soon each override is reviewed.",
                         no_args_is_help=True)
app = typer.Typer(help="Emergency overrides: list them with their review state; an auditor reviews one.",
                  no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
MAX_REVIEW_REASON = 1024
"""AccessLedger.MAX_REVIEW_REASON: longest reason a review may give, in bytes."""


@policy_app.command("set")
def set_policy(
    purposes: Annotated[str, typer.Option(help="Comma-separated vital-interest purposes (ids or names); "
                                               "empty: no override allowed.")],
    review_within: Annotated[str, typer.Option(help="How soon an auditor must review each override: 72h, 3d, "
                                                    "seconds.")] = "",
    max_overrides: Annotated[int, typer.Option("--max", min=0, max=65535,
                                               help="Most overrides one agency may record per --per (0: no limit); "
                                                    "the audit reports agencies above it.")] = 0,
    per: Annotated[str, typer.Option(help="The window --max counts over: 30d, 12h, seconds.")] = "",
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose the override policy (it replaces the current one)."""
    review_period = parse_duration(review_within) if review_within else 0
    window = parse_duration(per) if per else 0
    if max_overrides and not window:
        raise ConfigurationError("--max needs --per, the window it counts over (e.g. --per 30d)")
    if window and not max_overrides:
        raise ConfigurationError("--per needs --max, the most overrides per window")
    ledger = open_ledger(rpc, manifest)
    directory = read_directory(ledger)
    chosen = [directory.purpose(item).id for item in split_list(purposes)]
    if chosen and not review_period:
        raise ConfigurationError("give --review-within (e.g. 72h or 3d): every override must be reviewed in time")
    proposed = governance.set_override_policy(chosen, review_period, max_overrides, window)
    submit(proposed, rpc, manifest, keystore, password_env, dev_account, ledger=ledger)


@policy_app.command("show")
def show_policy(
    json_output: JsonOption = False, rpc: RpcOption = DEFAULT_RPC, manifest: ManifestOption = DEFAULT_MANIFEST
) -> None:
    """Show the override policy in force."""
    ledger = open_ledger(rpc, manifest)
    policy = ledger.override_policy()
    names = {p.id: p.name for p in ledger.purposes()}
    if json_output:
        print_json({
            "purposes": list(policy.purposes), "purpose_names": [names.get(p) for p in policy.purposes],
            "review_period": policy.review_period, "max_overrides": policy.max_overrides,
            "rate_window": policy.rate_window,
        })
        return
    if not policy.purposes:
        console.print("no emergency override is allowed (no purpose listed)")
        return
    console.print("purposes      " + ", ".join(f"{p} {names.get(p, '?')}" for p in policy.purposes))
    console.print(f"review within {_span(policy.review_period)}")
    limit = f"{policy.max_overrides} per agency per {_span(policy.rate_window)}" if policy.max_overrides else "none"
    console.print(f"rate limit    {limit}")


def _span(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit} ({seconds} s)"
    return f"{seconds} s"


def _override_json(o: Override, names: dict[str, str], now: int) -> dict[str, Any]:
    review = o.review
    return {
        "record": "0x" + o.record.hex(), "seq": o.seq, "requester": o.requester,
        "requester_name": names.get(o.requester), "justification": "0x" + o.justification.hex(),
        "recorded_at": o.recorded_at, "review_due": o.review_due, "status": o.status.name.lower(),
        "marker": o.marker(now) or None, "block": o.block,
        "review": None if review is None else {
            "auditor": review.auditor, "auditor_name": names.get(review.auditor), "accepted": review.accepted,
            "reason": review.reason, "reviewed_at": review.reviewed_at,
        },
    }


@app.command("list")
def list_overrides(
    pending: Annotated[bool, typer.Option("--pending", help="Only the overrides not reviewed yet.")] = False,
    json_output: JsonOption = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """List emergency overrides: record, seq, requester, when, review due, status; overdue or late marked."""
    ledger = open_ledger(rpc, manifest)
    _, now, _ = ledger.latest_block()
    names: dict[str, str] = {m.address: m.name for m in ledger.members() if m.name}
    overrides = [o for o in read_overrides(ledger) if not pending or o.review is None]
    if json_output:
        print_json([_override_json(o, names, now) for o in overrides])
        return
    table = Table("record", "seq", "requester", "recorded at", "review due", "status", "reviewed by", "")
    for o in overrides:
        reviewer = "-" if o.review is None else names.get(o.review.auditor, o.review.auditor)
        table.add_row("0x" + o.record.hex(), str(o.seq), names.get(o.requester, o.requester), show_time(o.recorded_at),
                      show_time(o.review_due), o.status.name.lower(), reviewer, o.marker(now).upper())
    console.print(table)
    if not overrides:
        console.print("no pending override" if pending else "no override recorded")


def _record(text: str) -> bytes:
    try:
        record = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        record = b""
    if len(record) != 32:
        raise ConfigurationError(f"--record must be a record id (0x + 64 hex digits), got {text!r}")
    return record


@app.command("review")
def review(
    record: Annotated[str, typer.Option(help="The record id (0x + 64 hex).")],
    seq: Annotated[int, typer.Option(min=1, help="The override's seq in the record's chain.")],
    reason: Annotated[str, typer.Option(help="Why the override is accepted or rejected (1 to 1024 bytes).")],
    accept: Annotated[bool, typer.Option("--accept", help="The override was justified.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="The override was not justified.")] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Record the signing auditor's review of an emergency override of another organisation (late ones too)."""
    if accept == reject:
        raise ConfigurationError("give exactly one of --accept and --reject")
    size = len(reason.encode("utf-8"))
    if not 1 <= size <= MAX_REVIEW_REASON:
        raise ConfigurationError(f"--reason must be 1 to {MAX_REVIEW_REASON} bytes, got {size}")
    record_id = _record(record)
    ledger = open_ledger(rpc, manifest)
    sender = ledger.sender(signer(keystore, password_env, dev_account))
    try:
        receipt = ledger.review_override(sender, record_id, seq, accept, reason)
    except ContractRevertError as refused:
        if not refused.rule.startswith("AccessLedger"):
            raise  # a Consortium standing rule (ConsortiumMissingRole(..., role=AUDITOR)) says it all
        from consentledger.audit.rules import explain

        raise ContractRevertError(refused.rule, refused.rule_args,
                                  f"{refused}: {explain(refused.rule)}") from None
    state = ledger.override_state(record_id, seq)
    _, now, _ = ledger.latest_block()
    late = " (late: it was due at " + show_time(state.review_due) + ")" if now > state.review_due else ""
    console.print(f"override {seq} of record 0x{record_id.hex()}: {state.status.name.lower()}{late} "
                  f"in tx 0x{bytes(receipt['transactionHash']).hex()}")
