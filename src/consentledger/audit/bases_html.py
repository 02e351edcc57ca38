"""The audit page's "Legal bases beside consent" section: statutory mandates and emergency overrides as tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from consentledger.audit.bases import MandateLine, OverrideLine


def legal_bases_section(mandates: Sequence[MandateLine], overrides: Sequence[OverrideLine]) -> str:
    """Return the section: every mandate (terms, state, accesses) and every override (review state, timeliness)."""
    parts = [
        '<section id="legal-bases">',
        "<h2>Legal bases beside consent</h2>",
        '<p class="muted">Statutory mandates governance granted, and emergency overrides with their auditors\' '
        "reviews, over the whole ledger. Times are UTC; lateness is judged as of the last indexed block.</p>",
        "<h3>Statutory mandates</h3>",
    ]
    if mandates:
        parts.append(
            '<table id="mandates"><thead><tr><th>mandate</th><th>institution</th><th>purpose</th><th>categories</th>'
            "<th>until</th><th>identifying fields</th><th>legal text</th><th>state</th><th>accesses</th>"
            "</tr></thead><tbody>"
        )
        for m in mandates:
            cells: tuple[object, ...] = (
                m.id, m.institution_name or m.institution, f"{m.purpose_name or m.purpose} ({m.purpose})",
                ", ".join(str(c) for c in m.categories), _time(m.valid_until),
                "released" if m.identified else "withheld", m.legal_text_uri or m.legal_text_hash, m.state, m.accesses,
            )
            parts.append(f'<tr data-mandate="{m.id}" data-state="{_e(m.state)}">'
                         + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No statutory mandate was granted.</p>')
    parts.append("<h3>Emergency overrides</h3>")
    if overrides:
        parts.append(
            '<table id="overrides"><thead><tr><th>recorded</th><th>record</th><th>seq</th><th>requester</th>'
            "<th>purpose</th><th>justification (hash)</th><th>review due</th><th>review</th><th>reviewer</th>"
            "<th>reason</th><th>timeliness</th></tr></thead><tbody>"
        )
        for o in overrides:
            status = o.status.name.lower()
            cells = (
                _time(o.recorded_at), _short(o.record), o.seq, o.requester_name or o.requester,
                f"{o.purpose_name or o.purpose} ({o.purpose})", _short(o.justification), _time(o.review_due), status,
                (o.reviewer_name or o.reviewed_by or "-"), o.reason or "-", o.lateness(),
            )
            parts.append(f'<tr data-record="{_e(o.record)}" data-seq="{o.seq}" data-review="{_e(status)}" '
                         f'data-late="{str(o.late_by > 0).lower()}">'
                         + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No emergency override was recorded.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _time(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: str) -> str:
    return value[:8] + "…" + value[-4:] if len(value) > 16 else value


def _e(value: object) -> str:
    return escape(str(value), quote=True)
