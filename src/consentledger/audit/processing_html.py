"""The audit page's "Records of processing" section: each agency's record of processing activities as tables."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from consentledger.audit.processing import ProcessingRecord, bases_text


def processing_section(records: Sequence[ProcessingRecord]) -> str:
    """Return the section: per agency, a table of the categories it holds and one of what it received."""
    parts = [
        '<section id="processing">',
        "<h2>Records of processing</h2>",
        '<p class="muted">Each agency\'s processing activities over the whole ledger (not only this period), '
        "from the chain alone: as custodian per category held, as requester per purpose and category received. "
        "Legal bases: consent, open (an OPEN category needs none), mandate (a statutory mandate) or override "
        "(an emergency override).</p>",
    ]
    for record in records:
        member = record.member
        parts.append(f'<h3 data-org="{_e(member.address)}">{_e(member.name)} '
                     f'<span class="muted mono">{_e(member.address)}</span></h3>')
        if record.held:
            parts.append(
                '<table class="processing-held"><thead><tr><th>category</th><th>fields</th><th>sensitivity</th>'
                "<th>retention</th><th>records (live)</th><th>subjects</th><th>purposes</th><th>recipients</th>"
                "<th>accesses (identified)</th><th>legal bases</th><th>destroyed</th></tr></thead><tbody>"
            )
            for held in record.held:
                terms = held.category
                destroyed = ", ".join(f"{reason.name.lower()} {n}" for reason, n in sorted(held.destroyed.items()))
                cells: tuple[object, ...] = (
                    terms.name, ", ".join(terms.fields), terms.sensitivity.name.lower(), _duration(terms.retention),
                    f"{held.records} ({held.live_records})", held.subjects, ", ".join(held.purposes) or "-",
                    ", ".join(held.recipients) or "-", f"{held.accesses} ({held.identified})",
                    bases_text(held.legal_bases) or "-", destroyed or "-",
                )
                parts.append(f'<tr data-category="{terms.id}">' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
            parts.append("</tbody></table>")
        if record.received:
            parts.append(
                '<table class="processing-received"><thead><tr><th>purpose</th><th>category</th><th>custodians</th>'
                "<th>records</th><th>subjects</th><th>accesses</th><th>identified</th><th>not identified</th>"
                "<th>legal bases</th></tr></thead><tbody>"
            )
            for got in record.received:
                received: tuple[object, ...] = (
                    got.purpose_name, got.category.name, ", ".join(got.custodians), got.records, got.subjects,
                    got.accesses, got.identified, got.accesses - got.identified, bases_text(got.legal_bases),
                )
                parts.append(f'<tr data-purpose="{got.purpose}" data-category="{got.category.id}">'
                             + "".join(f"<td>{_e(c)}</td>" for c in received) + "</tr>")
            parts.append("</tbody></table>")
    if not records:
        parts.append('<p class="muted">No agency holds or received any record.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _duration(seconds: int) -> str:
    return f"{seconds // 86_400} days" if seconds >= 86_400 and seconds % 86_400 == 0 else f"{seconds} s"


def _e(value: object) -> str:
    return escape(str(value), quote=True)
