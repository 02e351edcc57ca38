"""The tables `audit mandates` and `audit overrides` print: mandates and overrides as an auditor reads them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.table import Table

from consentledger.audit.bases import MandateLine, OverrideLine
from consentledger.cli.common import console


def print_mandates(lines: Sequence[MandateLine]) -> None:
    """Print one row per mandate, then how many there are."""
    table = Table("mandate", "institution", "purpose", "categories", "until (UTC)", "identifying fields",
                  "legal text", "state", "accesses")
    for line in lines:
        table.add_row(
            str(line.id), _named(line.institution_name, line.institution), _named(line.purpose_name, line.purpose),
            ", ".join(str(c) for c in line.categories), _time(line.valid_until),
            "released" if line.identified else "withheld", line.legal_text_uri or _short(line.legal_text_hash),
            line.state, str(line.accesses),
        )
    console.print(table)
    console.print(f"{len(lines)} mandates, {sum(line.accesses for line in lines)} accesses under them")


def print_overrides(lines: Sequence[OverrideLine], *, pending: bool) -> None:
    """Print one row per override with its review and timeliness, then how many are pending and late."""
    table = Table("recorded (UTC)", "record", "seq", "requester", "purpose", "justification", "review due (UTC)",
                  "review", "reviewer", "reason", "timeliness")
    for line in lines:
        table.add_row(
            _time(line.recorded_at), _short(line.record), str(line.seq), _named(line.requester_name, line.requester),
            _named(line.purpose_name, line.purpose), _short(line.justification), _time(line.review_due),
            line.status.name.lower(), _named(line.reviewer_name, line.reviewed_by) if line.reviewed_by else "-",
            line.reason or "-", line.lateness(),
        )
    console.print(table)
    waiting = sum(1 for line in lines if line.reviewed_at is None)
    late = sum(1 for line in lines if line.late_by)
    what = "overrides awaiting review" if pending else f"overrides ({waiting} awaiting review)"
    console.print(f"{len(lines)} {what}, {late} late")


def _named(name: str | None, value: object) -> str:
    shown = _short(value) if isinstance(value, str) else str(value if value is not None else "-")
    return f"{name} ({shown})" if name else shown


def _short(value: str) -> str:
    return value[:8] + "…" + value[-4:] if len(value) > 16 else value


def _time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")
