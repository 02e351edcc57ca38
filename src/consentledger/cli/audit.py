"""`consentledger index` and `consentledger audit`: index chain events, trace accesses, verify them."""

from __future__ import annotations

import csv
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
    parse_time,
    signer,
)
from consentledger.cli.consent import (
    SUBJECT_PASSWORD_ENV,
    GatewayOption,
    SubjectDevAccountOption,
    SubjectKeystoreOption,
    SubjectPasswordEnvOption,
    print_json,
    subject_signer,
)
from consentledger.errors import ConfigurationError
from consentledger.types import LegalBasis

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from consentledger.audit import RefusalLine, SyncResult, TraceLine
    from consentledger.audit.processing import ProcessingRecord
    from consentledger.chain.ledger import Ledger

app = typer.Typer(help="Audit: trace who accessed what, verify the chain of responsibility.", no_args_is_help=True)

DbOption = Annotated[
    str,
    typer.Option(
        "--db", envvar="CONSENTLEDGER_AUDIT_DB", help="Audit index database: sqlite:///file or postgresql://..."
    ),
]
DEFAULT_DB = "sqlite:///audit.db"
_CSV_FIELDS = (
    "seq", "time", "timestamp", "record", "subject", "category", "category_name", "custodian", "custodian_name",
    "requester", "requester_name", "actor", "purpose", "purpose_name", "basis", "consent", "mandate", "mandate_uri",
    "review", "identified", "tx_hash", "block", "log_index",
)
_REFUSAL_CSV_FIELDS = (
    "time", "timestamp", "record", "subject", "category", "category_name", "custodian", "custodian_name",
    "requester", "requester_name", "actor", "purpose", "purpose_name", "rule", "why", "tx_hash", "block", "log_index",
)


def sync(rpc: str, manifest: Path, db: str, *, transient: bool) -> tuple[Engine, Ledger, SyncResult]:
    """Open the chain and the index, bring the index up to the latest block, showing a progress bar."""
    from consentledger.audit import Indexer, SyncProgress
    from consentledger.store.db import make_engine

    ledger = open_ledger(rpc, manifest)
    engine = make_engine(db)
    indexer = Indexer(engine, ledger)
    bar = Progress(
        TextColumn("indexing blocks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=transient,
    )
    with bar:
        task = bar.add_task("index", total=None)

        def show(progress: SyncProgress) -> None:
            bar.update(task, total=progress.total, completed=progress.done)

        result = indexer.sync(progress=show)
    return engine, ledger, result


def index(
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Index the deployment's events into the audit database (resumes where the last run stopped)."""
    _, _, result = sync(rpc, manifest, db, transient=False)
    console.print(result.describe())


@app.command("trace")
def trace_command(
    subject: Annotated[str | None, typer.Option(help="Data subject address (derived records included).")] = None,
    record: Annotated[str | None, typer.Option(help="Record id (0x + 64 hex).")] = None,
    org: Annotated[str | None, typer.Option(help="Organisation address: as requester or as custodian.")] = None,
    purpose: Annotated[str | None, typer.Option(help="Purpose id or name.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time on (ISO-8601, UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO-8601, UTC if no zone).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many accesses.")] = None,
    refused: Annotated[
        bool, typer.Option("--refused", help="List the refused attempts (who was refused what, and why) instead.")
    ] = False,
    basis: Annotated[
        str | None, typer.Option(help="Only accesses under this legal basis: consent, mandate or override.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Query the index as it is, without the chain.")] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """List accesses (oldest first) matching every filter given, after bringing the index up to date.

    The basis column says what each access was granted under: consent, mandate N, or override.
    With --refused, list the attempts the ledger refused instead (AccessRefused: rule and why); the
    table of accesses ends with how many refused attempts match the same filters.
    """
    from consentledger.audit import create_index_schema, refusals, trace
    from consentledger.audit.trace import parse_basis
    from consentledger.store.db import make_engine

    if json_output and csv_output:
        raise ConfigurationError("choose one of --json and --csv")
    if basis is not None and refused:
        raise ConfigurationError("--basis filters accesses; refused attempts were granted under none")
    legal_basis = parse_basis(basis) if basis is not None else None
    if no_sync:
        engine = make_engine(db)
        create_index_schema(engine)
    else:
        engine, _, _ = sync(rpc, manifest, db, transient=True)
    filters: dict[str, Any] = {
        "subject": subject, "record": record, "org": org, "purpose": purpose,
        "since": parse_time(since) if since else None, "until": parse_time(until) if until else None,
    }
    if refused:
        _print_refusals(refusals(engine, **filters, limit=limit), json_output=json_output, csv_output=csv_output)
        return
    lines = trace(engine, **filters, limit=limit, basis=legal_basis)
    if json_output:
        print_json([line.to_json() for line in lines])
    elif csv_output:
        writer = csv.DictWriter(sys.stdout, fieldnames=_CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(line.to_json() for line in lines)
    else:
        _print_table(lines)
        refused_count = len(refusals(engine, **filters))
        if refused_count:
            console.print(f"{refused_count} refused attempts (--refused lists them)")


@app.command("verify")
def verify_command(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (the exit code as without).")
    ] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Check hash chains against on-chain heads, consents, mandates, overrides and their reviews, retention and
    membership; exit 1 on any finding.

    Each discrepancy is printed on its own line (kind, record, seq, tx, block: sentence).
    """
    from consentledger.audit import verify

    engine, ledger, _ = sync(rpc, manifest, db, transient=True)
    report = verify(engine, ledger)
    if json_output:
        print_json(report.to_json())
        if not report.ok:
            raise typer.Exit(1)
        return
    if not report.ok:
        for discrepancy in report.discrepancies:
            typer.echo(discrepancy.line())
        typer.echo(report.summary(), err=True)
        raise typer.Exit(1)
    typer.echo(report.summary())


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    since: Annotated[str | None, typer.Option(help="From this time on (ISO-8601, UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO-8601, UTC if no zone).")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only this data subject's records (derived ones included): 'Your data' page.")
    ] = None,
    pdf: Annotated[bool, typer.Option("--pdf", help="Also print the page to OUT.pdf with headless Chromium.")] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a self-contained HTML audit page: data-flow graph, verification result, filterable access timeline,
    the refused attempts (who was refused what, and why) and, without --subject, each agency's record of processing.

    Without --subject the page also lists the statutory mandates and the emergency overrides with their review
    state. Prints the file's path, then a one-line summary. Discrepancies are shown in the page (exit 0).
    """
    from consentledger.audit import refusals, trace, verify
    from consentledger.audit.bases import mandate_lines, override_lines
    from consentledger.audit.lifecycle import consent_standings, tombstones
    from consentledger.audit.processing import processing_records
    from consentledger.audit.render import print_pdf, render_audit_page, summary

    start, end = (parse_time(since) if since else None), (parse_time(until) if until else None)
    engine, ledger, _ = sync(rpc, manifest, db, transient=True)
    lines = trace(engine, subject=subject, since=start, until=end)
    refused = refusals(engine, subject=subject, since=start, until=end)
    report = verify(engine, ledger)
    title = f"Your data ({subject}): who accessed it, when and why" if subject else "Audit report: who accessed what"
    consents = consent_standings(engine, {line.consent for line in lines if line.consent}, int(time.time()))
    page = render_audit_page(lines, report, title=title, period=(_moment(start), _moment(end)), refusals=refused,
                             consents=consents, filtered=any(f is not None for f in (subject, start, end)),
                             tombstones=tombstones(engine, subject=subject),
                             processing=() if subject else processing_records(engine),
                             legal_bases=None if subject else (mandate_lines(engine), override_lines(engine)))
    out.write_text(page, encoding="utf-8")
    os.chmod(out, 0o644)
    typer.echo(str(out))
    if pdf:
        typer.echo(str(print_pdf(out, out.with_suffix(".pdf"))))
    typer.echo(summary(lines, report, refused))


@app.command("mandates")
def mandates_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Query the index as it is, without the chain.")] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """List the statutory mandates governance granted: institution, purpose, categories, end, legal text, state
    (in force, ended, revoked) and how many accesses were made under each."""
    from consentledger.audit.bases import mandate_lines
    from consentledger.cli.audit_bases import print_mandates

    lines = mandate_lines(_index(rpc, manifest, db, no_sync=no_sync))
    if json_output:
        print_json([line.to_json() for line in lines])
    else:
        print_mandates(lines)


@app.command("overrides")
def overrides_command(
    pending: Annotated[bool, typer.Option("--pending", help="Only overrides awaiting their review.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Query the index as it is, without the chain.")] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """List the emergency overrides: who recorded which, the justification's hash, when the review was due,
    the review (pending, accepted, rejected; by whom, why) and its timeliness as of the last indexed block."""
    from consentledger.audit.bases import override_lines
    from consentledger.cli.audit_bases import print_overrides

    lines = override_lines(_index(rpc, manifest, db, no_sync=no_sync), pending=pending)
    if json_output:
        print_json([line.to_json() for line in lines])
    else:
        print_overrides(lines, pending=pending)


def _index(rpc: str, manifest: Path, db: str, *, no_sync: bool) -> Engine:
    """Return the index's engine: as it is with `no_sync`, else brought up to the latest block first."""
    from consentledger.audit import create_index_schema
    from consentledger.store.db import make_engine

    if no_sync:
        engine = make_engine(db)
        create_index_schema(engine)
        return engine
    engine, _, _ = sync(rpc, manifest, db, transient=True)
    return engine


@app.command("processing")
def processing_command(
    org: Annotated[str, typer.Option(help="The agency: its address or its member name.")],
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV instead of tables.")] = False,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Query the index as it is, without the chain.")] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print an agency's record of processing activities, from the ledger alone (exit 8 for an unknown org).

    As custodian, one row per category it holds: fields, sensitivity, retention, records, subjects,
    purposes and recipients of the accesses, legal bases, records destroyed by reason. As requester,
    one row per purpose and category received: custodians, accesses, identified or not, legal bases.
    """
    from consentledger.audit import create_index_schema
    from consentledger.audit.processing import CSV_FIELDS, processing_record
    from consentledger.store.db import make_engine

    if no_sync:
        engine = make_engine(db)
        create_index_schema(engine)
    else:
        engine, _, _ = sync(rpc, manifest, db, transient=True)
    record = processing_record(engine, org)
    if csv_output:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(record.csv_rows())
        return
    _print_processing(record)


def _print_processing(record: ProcessingRecord) -> None:
    from consentledger.audit.processing import bases_text

    member = record.member
    console.print(f"Record of processing activities: {member.name} ({member.address})")
    held = Table("category", "sensitivity", "retention", "records (live)", "subjects", "purposes", "recipients",
                 "accesses (identified)", "legal bases", "destroyed", title="as custodian")
    for h in record.held:
        destroyed = ", ".join(f"{reason.name.lower()} {n}" for reason, n in sorted(h.destroyed.items()))
        held.add_row(
            f"{h.category.name} ({', '.join(h.category.fields)})", h.category.sensitivity.name.lower(),
            f"{h.category.retention // 86_400} days" if h.category.retention >= 86_400 else f"{h.category.retention} s",
            f"{h.records} ({h.live_records})", str(h.subjects), ", ".join(h.purposes) or "-",
            ", ".join(h.recipients) or "-", f"{h.accesses} ({h.identified})", bases_text(h.legal_bases) or "-",
            destroyed or "-",
        )
    received = Table("purpose", "category", "custodians", "records", "subjects", "accesses (identified)",
                     "legal bases", title="as requester")
    for r in record.received:
        received.add_row(r.purpose_name, r.category.name, ", ".join(r.custodians), str(r.records), str(r.subjects),
                         f"{r.accesses} ({r.identified})", bases_text(r.legal_bases))
    if record.held:
        console.print(held)
    if record.received:
        console.print(received)
    console.print(f"{len(record.held)} categories held, {len(record.received)} purpose/category pairs received")


@app.command("open")
def open_command(
    gateway: GatewayOption,
    view: Annotated[
        str | None,
        typer.Option(help="audit (every access; needs the AUDITOR role) or subject (your own records). "
                          "Default: audit for an auditor, else subject."),
    ] = None,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
    subject_keystore: SubjectKeystoreOption = None,
    subject_password_env: SubjectPasswordEnvOption = SUBJECT_PASSWORD_ENV,
    subject_dev_account: SubjectDevAccountOption = None,
) -> None:
    """Ask a gateway for a short-lived audit page and print its one-time URL (open it in a browser).

    Sign as an auditor organisation (--keystore / --dev-account) or as a data subject
    (--subject-keystore / --subject-dev-account). Prints the URL, then when it expires (stderr).
    """
    from consentledger.client import GatewayClient

    if view not in (None, "audit", "subject"):
        raise ConfigurationError(f"bad --view {view!r}: use audit or subject")
    as_subject = subject_keystore is not None or subject_dev_account is not None
    as_org = keystore is not None or dev_account is not None
    if as_subject == as_org:
        raise ConfigurationError("sign as an organisation (--keystore/--dev-account) or as a subject "
                                 "(--subject-keystore/--subject-dev-account), not both or neither")
    account = (subject_signer(subject_keystore, subject_password_env, subject_dev_account) if as_subject
               else signer(keystore, password_env, dev_account))
    with GatewayClient(gateway, account) as client:
        opened = client.open_audit_page(view)
    typer.echo(opened["url"])
    typer.echo(f"{opened['view']} view for {opened['viewer']}; opens once, until {opened['expires_at']}", err=True)


def _moment(unix: int | None) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix is not None else None


def _print_table(lines: list[TraceLine]) -> None:
    table = Table(
        "time", "record", "seq", "category", "custodian", "requester", "actor", "purpose", "basis", "consent", "tx",
        "block",
    )
    for line in lines:
        table.add_row(
            line.time.strftime("%Y-%m-%d %H:%M:%S"), _short(line.record), str(line.seq),
            _named(line.category_name, line.category), _named(line.custodian_name, line.custodian),
            _named(line.requester_name, line.requester), _short(line.actor) if line.actor else "organisation",
            _named(line.purpose_name, line.purpose), line.basis_label(),
            _short(line.consent) if line.consent and line.basis is not LegalBasis.MANDATE else "-",
            _short(line.tx_hash), str(line.block),
        )
    console.print(table)
    console.print(f"{len(lines)} accesses")


def _print_refusals(lines: list[RefusalLine], *, json_output: bool, csv_output: bool) -> None:
    if json_output:
        print_json([line.to_json() for line in lines])
        return
    if csv_output:
        writer = csv.DictWriter(sys.stdout, fieldnames=_REFUSAL_CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(line.to_json() for line in lines)
        return
    table = Table("time", "requester", "actor", "record", "category", "purpose", "why refused", "rule", "tx", "block")
    for line in lines:
        table.add_row(
            line.time.strftime("%Y-%m-%d %H:%M:%S"), _named(line.requester_name, line.requester),
            _short(line.actor) if line.actor else "organisation", _short(line.record),
            _named(line.category_name, line.category), _named(line.purpose_name, line.purpose), line.why, line.rule,
            _short(line.tx_hash), str(line.block),
        )
    console.print(table)
    console.print(f"{len(lines)} refused attempts")


def _named(name: str | None, value: object) -> str:
    shown = _short(value) if isinstance(value, str) else str(value if value is not None else "-")
    return f"{name} ({shown})" if name else shown


def _short(value: str) -> str:
    return value[:8] + "…" + value[-4:] if len(value) > 16 else value


@app.command("actor")
def actor(
    gateway: GatewayOption,
    actor_id: Annotated[str, typer.Argument(metavar="ACTOR", help="The actor pseudonym of an access entry (0x…).")],
    out: Annotated[Path | None, typer.Option(help="Also save the signed statement here.")] = None,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Ask the acting agency's gateway who ACTOR is and check its signed answer against the chain.

    Sign as an auditor organisation (--keystore / --dev-account). Exit 9 if the statement does not hold.
    """
    import json

    from consentledger.client import GatewayClient

    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        answer = client.who_is(actor_id)
    if out is not None:
        out.write_text(json.dumps(answer, indent=2) + "\n")
    _show_disclosure(rpc, manifest, answer)


@app.command("check-actor")
def check_actor(
    statement_file: Annotated[Path, typer.Argument(metavar="FILE", help="A statement saved by `audit actor --out`.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Check a saved actor statement against the chain (offline from any gateway). Exit 9 if it does not hold."""
    import json

    try:
        answer = json.loads(statement_file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the statement {statement_file}: {exc}") from None
    _show_disclosure(rpc, manifest, answer if isinstance(answer, dict) else {})


def _show_disclosure(rpc: str, manifest: Path, answer: dict[str, object]) -> None:
    from consentledger.audit.actors import check_disclosure
    from consentledger.errors import IntegrityError

    statement, verdict = check_disclosure(open_ledger(rpc, manifest), answer)
    if not verdict.ok:
        raise IntegrityError(f"the actor statement does not hold: {verdict.reason}")
    console.print(f"verified: {verdict.reason}")
    if answer.get("revoked_at"):
        console.print(f"the client's key was revoked at {answer['revoked_at']}")



@app.command("justification")
def justification(
    gateway: GatewayOption,
    record: Annotated[str, typer.Option(help="The record id of the override (0x + 64 hex).")],
    seq: Annotated[int, typer.Option(min=1, help="The override's seq in the record's chain.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Read an emergency override's justification from the requester's gateway and check it against the chain.

    Sign as an auditor organisation. keccak256(salt ‖ text) must be the hash the override recorded on
    chain; exit 9 if it is not.
    """
    from consentledger.client import GatewayClient, parse_record_id
    from consentledger.errors import IntegrityError, NotFoundError
    from consentledger.store.justifications import justification_hash

    record_id = parse_record_id(record)
    ledger = open_ledger(rpc, manifest)
    recorded = ledger.access_entries(ledger.deployment.deploy_block, ledger.block_number(), records=[record_id],
                                     seqs=[seq])
    if not recorded or recorded[0].basis is not LegalBasis.OVERRIDE:
        raise NotFoundError(f"access {seq} to record {record} is not an emergency override on chain")
    with GatewayClient(gateway, signer(keystore, password_env, dev_account)) as client:
        kept = client.audit_override(record_id, seq)
    text, salt = str(kept["justification"]), bytes.fromhex(str(kept["salt"]).removeprefix("0x"))
    if justification_hash(salt, text) != recorded[0].consent:
        raise IntegrityError(f"the justification the gateway gave does not hash to override {seq}'s on chain")
    console.print(f"justification of override {seq} (matches the chain, 0x{recorded[0].consent.hex()[:16]}…): "
                  f"{text}")
