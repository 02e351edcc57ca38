"""The audit page: one self-contained HTML document with a data-flow graph (inline SVG) and a timeline.

Every name on the page comes from the chain (members, purposes, categories name themselves through
governance), so every value is escaped, and a Content-Security-Policy lets only the page's own
style and script (by hash) run: no request leaves the page, and an escaping slip would not execute.
"""

from __future__ import annotations

import base64
import hashlib
import html
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path

from consentledger.audit.bases import MandateLine, OverrideLine
from consentledger.audit.bases_html import legal_bases_section
from consentledger.audit.lifecycle import ConsentStanding, Tombstone
from consentledger.audit.processing import ProcessingRecord
from consentledger.audit.processing_html import processing_section
from consentledger.audit.trace import RefusalLine, TraceLine
from consentledger.audit.verify import VerifyReport
from consentledger.errors import ConfigurationError
from consentledger.types import LegalBasis, TombstoneReason

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#882255", "#000000")
"""Okabe–Ito colours (distinguishable with colour-blindness), one per purpose in id order."""

_WIDTH, _NODE_W, _NODE_H, _ROW = 960, 230, 36, 64
_LEFT_X, _RIGHT_X, _TOP = 20, _WIDTH - 20 - _NODE_W, 48
_MIN_STROKE, _MAX_STROKE = 1.5, 14.0
_LABEL_AT = (0.5, 0.28, 0.72)
"""Where along its curve each edge's label sits, cycling, so labels of crossing edges do not pile up."""
_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_ENDINGS = {
    TombstoneReason.RETENTION: "destroyed: its retention period ended",
    TombstoneReason.ERASURE: "erased at the data subject's request",
    TombstoneReason.SUNSET: "destroyed: the purpose it was held for reached its sunset",
    TombstoneReason.CUSTODIAN: "destroyed by its custodian",
    TombstoneReason.SOURCE_DESTROYED: "destroyed because a record it was derived from was destroyed",
}
"""What a tombstone's reason means, as the timeline says it."""


@dataclass(frozen=True)
class FlowEdge:
    """Accesses to records held by `custodian` by `requester` for `purpose`, counted."""

    custodian: str
    requester: str
    purpose: int
    count: int


def flow_edges(lines: Sequence[TraceLine]) -> list[FlowEdge]:
    """Return one edge per (custodian, requester, purpose), most accesses first, ties in address order."""
    counts = Counter((line.custodian or "", line.requester, line.purpose) for line in lines)
    edges = [FlowEdge(c, r, p, n) for (c, r, p), n in counts.items()]
    return sorted(edges, key=lambda e: (-e.count, e.custodian, e.requester, e.purpose))


def stroke_width(count: int, most: int) -> float:
    """Return an edge's stroke width: affine in its count, from 1.5 (none) to 14 (the busiest edge)."""
    return round(_MIN_STROKE + (_MAX_STROKE - _MIN_STROKE) * count / max(most, 1), 2)


def summary(lines: Sequence[TraceLine], report: VerifyReport | None, refusals: Sequence[RefusalLine] = ()) -> str:
    """Return one line: how many accesses between how many organisations, the verification result, and
    how many attempts were refused (when any were)."""
    custodians = {line.custodian for line in lines}
    requesters = {line.requester for line in lines}
    flows = f"{len(lines)} accesses, {len(custodians)} custodians → {len(requesters)} requesters"
    refused = f"; {_plural(len(refusals), 'refused attempt', 'refused attempts')}" if refusals else ""
    if report is None:
        return f"{flows}; not verified{refused}"
    if report.ok:
        return f"{flows}; verified up to block {report.block}: no discrepancies{refused}"
    return f"{flows}; {len(report.discrepancies)} discrepancies up to block {report.block}{refused}"


def render_audit_page(
    lines: Sequence[TraceLine],
    report: VerifyReport | None,
    *,
    title: str,
    period: tuple[datetime | None, datetime | None],
    base_href: str | None = None,
    refusals: Sequence[RefusalLine] = (),
    consents: Mapping[str, ConsentStanding] | None = None,
    filtered: bool = False,
    tombstones: Sequence[Tombstone] = (),
    processing: Sequence[ProcessingRecord] = (),
    legal_bases: tuple[Sequence[MandateLine], Sequence[OverrideLine]] | None = None,
) -> str:
    """Return the audit page for `lines` (accesses, oldest first) and `report` as one HTML document.

    `refusals` (oldest first) are listed under "Refused attempts": who tried to read what, and why
    the ledger refused. `period` is what the lines were selected for, shown in the header (None: open-ended). With
    `base_href` the page gets a `<base>` and links each record, organisation and purpose to
    `?record=`, `?org=`, `?purpose=` relative to it (the `trace` filters), for a server that
    renders filtered pages; without it (a file) nothing links anywhere. `consents` (by id) gives each access's
    consent terms and state; without one the consent shows as its id. A jump in a record's seq shows as a row
    of its own: "not on this page" when `filtered`, "missing" otherwise. `tombstones` (erasures, sunsets,
    retention ends) appear in the timeline in chain order, and a custodian all of whose records on the page are
    destroyed is drawn as having held them. `processing` (agencies' records of processing activities), if any, is
    shown last under "Records of processing". `legal_bases` (statutory mandates, emergency overrides), if given, is
    shown under "Legal bases beside consent", each override with its review state and timeliness.
    """
    style, script = _asset("audit.css"), _asset("audit.js")
    csp = content_security_policy(served=base_href is not None)
    base = f'<base href="{_e(base_href)}">' if base_href is not None else ""
    links = base_href is not None
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        base,
        f"<title>{_e(title)}</title>",
        f"<style>{style}</style>",
        "</head>",
        "<body>",
        _header(lines, report, title=title, period=period, refused=len(refusals)),
        '<section id="flow">',
        "<h2>Data flow</h2>",
        '<p class="muted">Custodians (left) to requesters (right); line width grows with the number of accesses, '
        "colour shows the purpose.</p>",
        flow_svg(lines, tombstones),
        "</section>",
        _timeline(lines, report, links=links, consents=consents or {}, filtered=filtered,
                  tombstones=tombstones),
        _refusals(refusals, links=links),
        legal_bases_section(*legal_bases) if legal_bases is not None else "",
        processing_section(processing) if processing else "",
        f"<script>{script}</script>",
        "</body>",
        "</html>",
        "",
    ])


def content_security_policy(*, served: bool) -> str:
    """Return the page's Content-Security-Policy: only its own style and script (by hash), nothing fetched.

    A `served` page (with a `<base>`) may resolve links against its own origin; a file may not.
    """
    style, script = _asset("audit.css"), _asset("audit.js")
    return (
        f"default-src 'none'; style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
        "base-uri " + ("'self'" if served else "'none'") + "; form-action 'none'"
    )


def flow_svg(lines: Sequence[TraceLine], tombstones: Sequence[Tombstone] = ()) -> str:
    """Return the data-flow graph as an inline `<svg>`: organisations in two columns, one path per edge.

    A custodian whose every record among `lines` has a tombstone shows "held N records, all destroyed".
    """
    edges = flow_edges(lines)
    destroyed = {tombstone.record for tombstone in tombstones}
    held: dict[str, set[str]] = {}
    for line in lines:
        held.setdefault(line.custodian or "", set()).add(line.record)
    gone = {custodian: len(records) for custodian, records in held.items() if records <= destroyed}
    colours = _purpose_colours(lines)
    names = _names(lines)
    custodians = _column(edges, lambda e: e.custodian)
    requesters = _column(edges, lambda e: e.requester)
    rows = max(len(custodians), len(requesters), 1)
    legend_top = _TOP + rows * _ROW + 16
    height = legend_top + 24 + 22 * len(colours)
    left_y = _centres(len(custodians), rows)
    right_y = _centres(len(requesters), rows)
    parts = [
        f'<svg class="flow" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" '
        f'width="{_WIDTH}" height="{height}" role="img" aria-labelledby="flow-title">',
        '<title id="flow-title">Accesses from custodians to requesters, by purpose</title>',
        f'<text class="column-title" x="{_LEFT_X}" y="24">Custodians (hold or held the records)</text>',
        f'<text class="column-title" x="{_RIGHT_X}" y="24">Requesters (accessed them)</text>',
    ]
    if not edges:
        parts.append(f'<text x="{_WIDTH // 2}" y="{_TOP + 20}" text-anchor="middle">No accesses in this period.</text>')
    most = max((e.count for e in edges), default=1)
    # Ports: the edges leaving (arriving at) one box are spread over its height, in drawing order.
    drawn = sorted(edges, key=lambda e: (custodians.index(e.custodian), requesters.index(e.requester), e.purpose))
    out_port = _ports(drawn, lambda e: e.custodian)
    in_port = _ports(drawn, lambda e: e.requester)
    for i, edge in enumerate(drawn):
        x1, x2 = _LEFT_X + _NODE_W, _RIGHT_X
        y1 = left_y[custodians.index(edge.custodian)] + out_port[i]
        y2 = right_y[requesters.index(edge.requester)] + in_port[i]
        mid = (x1 + x2) / 2
        curve = ((x1, y1), (mid, y1), (mid, y2), (x2, y2))
        lx, ly = _bezier(curve, _LABEL_AT[i % len(_LABEL_AT)])
        purpose = names.purposes.get(edge.purpose, str(edge.purpose))
        label = f"{edge.count} × {purpose}"
        tooltip = (f"{names.org(edge.custodian)} → {names.org(edge.requester)}: "
                   f"{_plural(edge.count, 'access', 'accesses')} for {purpose}")
        parts.append(
            f'<g class="edge" data-custodian="{_e(edge.custodian)}" data-requester="{_e(edge.requester)}" '
            f'data-search-requester="{_e(names.search(edge.requester))}" data-purpose="{edge.purpose}" '
            f'data-count="{edge.count}">'
            f"<title>{_e(tooltip)}</title>"
            f'<path d="M{x1},{y1:.1f} C{mid},{y1:.1f} {mid},{y2:.1f} {x2},{y2:.1f}" '
            f'stroke="{colours[edge.purpose]}" stroke-width="{stroke_width(edge.count, most)}"/>'
            f'<text x="{lx:.1f}" y="{ly - 4:.1f}" text-anchor="middle">{_e(label)}</text>'
            "</g>"
        )
    for side, column, ys, x in (("custodian", custodians, left_y, _LEFT_X), ("requester", requesters, right_y,
                                                                              _RIGHT_X)):
        for address, y in zip(column, ys, strict=True):
            ended = gone.get(address) if side == "custodian" else None
            note = f"held {_plural(ended, 'record', 'records')}, all destroyed" if ended else ""
            label = (f'<text x="{x + 10}" y="{y - 3:.1f}">{_e(_clip(names.org(address), 30))}</text>'
                     f'<text class="ended" x="{x + 10}" y="{y + 12:.1f}">{_e(note)}</text>' if note else
                     f'<text x="{x + 10}" y="{y + 4.5:.1f}">{_e(_clip(names.org(address), 30))}</text>')
            parts.append(
                f'<g class="node {side}{" ended" if note else ""}" data-address="{_e(address)}">'
                f"<title>{_e(names.org(address))} {_e(address or 'unknown custodian')}"
                f"{_e(': ' + note) if note else ''}</title>"
                f'<rect x="{x}" y="{y - _NODE_H / 2:.1f}" width="{_NODE_W}" height="{_NODE_H}" rx="6"/>'
                f"{label}</g>"
            )
    parts.append(f'<g class="legend"><text class="column-title" x="{_LEFT_X}" y="{legend_top + 8}">Purposes</text>')
    uses = Counter(line.purpose for line in lines)
    for row, (purpose_id, colour) in enumerate(colours.items()):
        y = legend_top + 30 + 22 * row
        parts.append(
            f'<g class="legend-item" data-purpose="{purpose_id}">'
            f'<line x1="{_LEFT_X}" y1="{y - 4}" x2="{_LEFT_X + 28}" y2="{y - 4}" stroke="{colour}" stroke-width="6"/>'
            f'<text x="{_LEFT_X + 38}" y="{y}">{_e(names.purposes.get(purpose_id, str(purpose_id)))} '
            f"(purpose {purpose_id}): {_plural(uses[purpose_id], 'access', 'accesses')}</text></g>"
        )
    parts.append("</g></svg>")
    return "\n".join(parts)


def print_pdf(page: Path, pdf: Path, *, timeout: float = 120) -> Path:
    """Print the HTML file `page` to `pdf` with headless Chromium from PATH and return `pdf`."""
    browser = next((found for name in _BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise ConfigurationError(f"--pdf needs Chromium on PATH (looked for {', '.join(_BROWSERS)})")
    with tempfile.TemporaryDirectory(prefix="consentledger-pdf-") as profile:
        done = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                "--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}", page.resolve().as_uri(),
            ],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0 or not pdf.exists():
        raise ConfigurationError(f"{browser} could not print {page} to PDF: {done.stderr.strip()[-400:]}")
    return pdf


def _header(
    lines: Sequence[TraceLine], report: VerifyReport | None, *, title: str,
    period: tuple[datetime | None, datetime | None], refused: int,
) -> str:
    since, until = period
    counts = (
        (len(lines), "accesses"),
        (len({line.record for line in lines}), "records"),
        (len({line.subject for line in lines if line.subject}), "data subjects"),
        (len({line.custodian for line in lines}), "custodians"),
        (len({line.requester for line in lines}), "requesters"),
        (len({line.purpose for line in lines}), "purposes"),
        (refused, "refused attempts"),
    )
    return "\n".join([
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="period">Period: {_e(_moment(since, "the beginning"))} to {_e(_moment(until, "now"))}'
        + (f" · accesses from {_e(_moment(lines[0].time))} to {_e(_moment(lines[-1].time))}" if lines else "")
        + "</p>",
        '<ul class="counts">' + "".join(f"<li><b>{n}</b> {what}</li>" for n, what in counts) + "</ul>",
        _verification(report),
        "</header>",
    ])


def _verification(report: VerifyReport | None) -> str:
    if report is None:
        return '<section id="verification" class="verification"><p class="verdict">Not verified.</p></section>'
    if report.ok:
        return (
            '<section id="verification" class="verification ok">'
            f'<p class="verdict">Verified: no discrepancies.</p><p class="muted">{_e(report.summary())}</p></section>'
        )
    rows = "".join(
        f'<tr class="discrepancy" data-kind="{_e(d.kind.value)}"><td>{_e(d.kind.value)}</td>'
        f'<td class="mono">{_e(d.record or "-")}</td><td>{_e(d.seq if d.seq is not None else "-")}</td>'
        f'<td class="mono">{_e(d.tx_hash or "-")}</td><td>{_e(d.block if d.block is not None else "-")}</td>'
        f"<td>{_e(d.message)}</td></tr>"
        for d in report.discrepancies
    )
    return (
        '<section id="verification" class="verification bad">'
        f'<p class="verdict">{len(report.discrepancies)} discrepancies found.</p>'
        f'<p class="muted">{_e(report.summary())}</p>'
        '<table id="discrepancies"><thead><tr><th>kind</th><th>record</th><th>seq</th><th>tx</th><th>block</th>'
        f"<th>finding</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _timeline(
    lines: Sequence[TraceLine], report: VerifyReport | None, *, links: bool,
    consents: Mapping[str, ConsentStanding], filtered: bool, tombstones: Sequence[Tombstone] = (),
) -> str:
    names = _names(lines)
    flagged = {(d.record, d.seq) for d in report.discrepancies} if report else set()
    flagged_tx = {d.tx_hash for d in report.discrepancies if d.tx_hash} if report else set()
    options = "".join(
        f'<option value="{purpose}">{_e(name)} ({purpose})</option>' for purpose, name in sorted(names.purposes.items())
    )
    rows = []
    next_seq: dict[str, int] = {}
    endings = sorted(tombstones, key=lambda tombstone: tombstone.block)
    for line in lines:
        while endings and endings[0].block < line.block:
            rows.append(_ending_row(endings.pop(0), names))
        expected = next_seq.get(line.record, 1)
        next_seq[line.record] = line.seq + 1
        if line.seq > expected:
            rows.append(_gap_row(line.record, expected, line.seq - 1, filtered=filtered))
        bad = (line.record, line.seq) in flagged or line.tx_hash in flagged_tx
        category = f"{line.category_name} ({line.category})" if line.category_name else str(line.category or "-")
        purpose = names.purposes.get(line.purpose, str(line.purpose))
        record_text = " ".join(str(v) for v in (line.record, line.category_name, line.subject) if v).lower()
        cells = [
            _e(line.time.strftime("%Y-%m-%d %H:%M:%S")),
            str(line.seq),
            _link(f"?record={line.record}", _short(line.record), line.record, links),
            f'<span title="{_e(line.subject)}">{_e(_short(line.subject))}</span>' if line.subject else "-",
            _e(category),
            _link(f"?org={line.custodian}", names.org(line.custodian or ""), line.custodian or "", links),
            _link(f"?org={line.requester}", names.org(line.requester), line.requester, links),
            f'<span title="{_e(line.actor)}">{_e(_short(line.actor))}</span>' if line.actor else "organisation",
            _link(f"?purpose={line.purpose}", f"{purpose} ({line.purpose})", str(line.purpose), links),
            "identified" if line.identified else "withheld",
            (_consent_cell(line.consent, consents, names.purposes) if line.basis is LegalBasis.CONSENT
             else f'<span class="basis" data-basis="{_e(line.basis.name.lower())}">{_e(line.basis_words())}</span>'),
            f'<span title="{_e(line.tx_hash)}">{_e(_short(line.tx_hash))}</span> · log {line.log_index}',
            str(line.block),
        ]
        classes = ' class="flagged"' if bad else ""
        rows.append(
            f'<tr{classes} data-time="{_e(line.time.isoformat())}" data-record="{_e(line.record)}" '
            f'data-seq="{line.seq}" data-category="{_e(line.category if line.category is not None else "")}" '
            f'data-custodian="{_e(line.custodian or "")}" data-requester="{_e(line.requester)}" '
            f'data-actor="{_e(line.actor or "")}" data-purpose="{line.purpose}" '
            f'data-subject="{_e(line.subject or "")}" data-identified="{str(line.identified).lower()}" '
            f'data-log-index="{line.log_index}" '
            f'data-consent="{_e(line.consent or "")}" data-basis="{_e(line.basis_label())}" '
            f'data-tx="{_e(line.tx_hash)}" '
            f'data-block="{line.block}" data-search-requester="{_e(names.search(line.requester))}" '
            f'data-search-record="{_e(record_text)}">'
            + "".join(
                f'<td class="mono">{cell}</td>' if column in (2, 3, 7, 11) else f"<td>{cell}</td>"
                for column, cell in enumerate(cells)
            )
            + "</tr>"
        )
    rows.extend(_ending_row(tombstone, names) for tombstone in endings)
    return "\n".join([
        '<section id="timeline">',
        "<h2>Accesses</h2>",
        '<div class="filters">',
        '<label>Requester <input id="filter-requester" type="search" placeholder="name or address"></label>',
        f'<label>Purpose <select id="filter-purpose"><option value="">all purposes</option>{options}</select></label>',
        '<label>Record <input id="filter-record" type="search" placeholder="record id, category or subject"></label>',
        f'<span id="shown" class="shown muted">{len(lines)} of {len(lines)} accesses shown</span>',
        "</div>",
        '<table id="accesses"><thead><tr><th>time (UTC)</th><th>seq</th><th>record</th><th>subject</th>'
        "<th>category</th><th>custodian</th><th>requester</th><th>actor</th><th>purpose</th>"
        "<th>identifying fields</th><th>consent (terms, state)</th><th>tx</th><th>block</th></tr></thead>",
        "<tbody>",
        *rows,
        "</tbody></table>",
        "</section>",
    ])


def _ending_row(tombstone: Tombstone, names: _Names) -> str:
    when = datetime.fromtimestamp(tombstone.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (f'<tr class="ended" data-ended-record="{_e(tombstone.record)}" '
            f'data-reason="{_e(tombstone.reason.name.lower())}" data-tx="{_e(tombstone.tx_hash)}">'
            f"<td>{_e(when)}</td><td colspan=\"12\">Record <span class=\"mono\" title=\"{_e(tombstone.record)}\">"
            f"{_e(_short(tombstone.record))}</span> of data subject <span class=\"mono\" "
            f'title="{_e(tombstone.subject)}">{_e(_short(tombstone.subject))}</span>, held by '
            f"{_e(names.org(tombstone.custodian))}, {_e(_ENDINGS.get(tombstone.reason, 'destroyed'))} "
            f'(tx <span class="mono" title="{_e(tombstone.tx_hash)}">{_e(_short(tombstone.tx_hash))}</span>, '
            f"block {tombstone.block})</td></tr>")


def _gap_row(record: str, first: int, last: int, *, filtered: bool) -> str:
    seqs = f"seq {first}" if first == last else f"seq {first}–{last}"
    why = "not on this page (filtered out)" if filtered else "missing: the chain numbered accesses this page lacks"
    return (f'<tr class="gap" data-gap-record="{_e(record)}" data-gap-first="{first}" data-gap-last="{last}">'
            f'<td colspan="13">{_e(seqs)} of record <span class="mono" title="{_e(record)}">{_e(_short(record))}'
            f"</span> {_e(why)}</td></tr>")


def _consent_cell(consent: str | None, consents: Mapping[str, ConsentStanding], purposes: Mapping[int, str]) -> str:
    if not consent:
        return "none (open category)"
    standing = consents.get(consent)
    ident = f'<span title="{_e(consent)}">{_e(_short(consent))}</span>'
    if standing is None:  # a derived record's access names the combination of its sources' consents
        return f"{ident} (no single consent: a derived record's source consents, combined)"
    terms = standing.consent
    scope = ("every record of category " + str(terms.category) if not any(terms.record)
             else "record " + _short("0x" + terms.record.hex()))
    until = datetime.fromtimestamp(terms.valid_until, UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = (f"{ident} <b>{_e(standing.state)}</b>: {_e(purposes.get(terms.purpose, str(terms.purpose)))} "
            f"({terms.purpose}), {_e(scope)}, until {_e(until)} UTC, {standing.uses} of {terms.max_uses} uses, "
            f"{'identified' if terms.identified else 'not identified'}")
    return f'<span class="consent" data-state="{_e(standing.state)}">{text}</span>'


def _refusals(refusals: Sequence[RefusalLine], *, links: bool) -> str:
    """Return the "Refused attempts" section: when, who (org and actor), which record, for what, and why."""
    rows = []
    for line in refusals:
        requester = line.requester_name or _short(line.requester)
        purpose = f"{line.purpose_name or line.purpose} ({line.purpose})"
        category = f"{line.category_name} ({line.category})" if line.category_name else "-"
        record_text = " ".join(str(v) for v in (line.record, line.category_name, line.subject) if v).lower()
        search = f"{line.requester_name or ''} {line.requester}".strip().lower()
        cells = [
            _e(line.time.strftime("%Y-%m-%d %H:%M:%S")),
            _link(f"?org={line.requester}", requester, line.requester, links),
            f'<span title="{_e(line.actor)}">{_e(_short(line.actor))}</span>' if line.actor else "organisation",
            _link(f"?record={line.record}", _short(line.record), line.record, links),
            _e(category),
            _link(f"?purpose={line.purpose}", purpose, str(line.purpose), links),
            f'<span class="why">{_e(line.why)}</span> <span class="muted rule">({_e(line.rule)})</span>',
            f'<span title="{_e(line.tx_hash)}">{_e(_short(line.tx_hash))}</span>',
            str(line.block),
        ]
        rows.append(
            f'<tr data-time="{_e(line.time.isoformat())}" data-record="{_e(line.record)}" '
            f'data-requester="{_e(line.requester)}" data-actor="{_e(line.actor or "")}" '
            f'data-purpose="{line.purpose}" data-rule="{_e(line.rule)}" data-tx="{_e(line.tx_hash)}" '
            f'data-block="{line.block}" data-search-requester="{_e(search)}" '
            f'data-search-record="{_e(record_text)}">'
            + "".join(
                f'<td class="mono">{cell}</td>' if column in (2, 3, 7) else f"<td>{cell}</td>"
                for column, cell in enumerate(cells)
            )
            + "</tr>"
        )
    if not rows:
        body = '<p class="muted">No refused attempts in this period.</p>'
    else:
        body = "\n".join([
            f'<p id="shown-refused" class="shown muted">{len(rows)} of {len(rows)} refused attempts shown</p>',
            '<table id="refused"><thead><tr><th>time (UTC)</th><th>requester</th><th>actor</th><th>record</th>'
            "<th>category</th><th>purpose</th><th>why refused</th><th>tx</th><th>block</th></tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table>",
        ])
    return "\n".join([
        '<section id="refusals">',
        "<h2>Refused attempts</h2>",
        '<p class="muted">Who tried to read what and was refused by the ledger, and why. A refused attempt is on '
        "the chain (AccessRefused) but on no record's hash chain: nothing was released.</p>",
        body,
        "</section>",
    ])


@dataclass(frozen=True)
class _Names:
    orgs: dict[str, str]
    purposes: dict[int, str]

    def org(self, address: str) -> str:
        return self.orgs.get(address) or (_short(address) if address else "unknown custodian")

    def search(self, address: str) -> str:
        return f"{self.orgs.get(address, '')} {address}".strip().lower()


def _names(lines: Sequence[TraceLine]) -> _Names:
    orgs: dict[str, str] = {}
    purposes: dict[int, str] = {}
    for line in lines:
        if line.custodian and line.custodian_name:
            orgs[line.custodian] = line.custodian_name
        if line.requester_name:
            orgs[line.requester] = line.requester_name
        purposes[line.purpose] = line.purpose_name or str(line.purpose)
    return _Names(orgs, purposes)


def _purpose_colours(lines: Sequence[TraceLine]) -> dict[int, str]:
    return {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(sorted({line.purpose for line in lines}))}


def _column(edges: Sequence[FlowEdge], key: Callable[[FlowEdge], str]) -> list[str]:
    """Return one column's addresses, busiest first, ties in address order."""
    totals: Counter[str] = Counter()
    for edge in edges:
        totals[key(edge)] += edge.count
    return sorted(totals, key=lambda address: (-totals[address], address))


def _centres(n: int, rows: int) -> list[float]:
    """Return the y of each of `n` boxes, the shorter column centred against the taller one."""
    top = _TOP + (rows - n) * _ROW / 2 + _ROW / 2
    return [top + i * _ROW for i in range(n)]


def _ports(edges: Sequence[FlowEdge], key: Callable[[FlowEdge], str]) -> list[float]:
    """Return each edge's vertical offset from its box's centre, spreading a box's edges over its height."""
    per_node = Counter(key(e) for e in edges)
    seen: Counter[str] = Counter()
    offsets = []
    for edge in edges:
        node = key(edge)
        n, i = per_node[node], seen[node]
        seen[node] += 1
        step = min(8.0, (_NODE_H - 8) / max(n - 1, 1))
        offsets.append((i - (n - 1) / 2) * step)
    return offsets


def _bezier(points: tuple[tuple[float, float], ...], t: float) -> tuple[float, float]:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    u = 1 - t
    return (
        u**3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t**3 * x3,
        u**3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t**3 * y3,
    )


def _link(href: str, text: str, title: str, links: bool) -> str:
    if not links:
        return f'<span title="{_e(title)}">{_e(text)}</span>'
    return f'<a href="{_e(href)}" title="{_e(title)}">{_e(text)}</a>'


def _moment(moment: datetime | None, otherwise: str = "-") -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment is not None else otherwise


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _short(value: str) -> str:
    return value[:8] + "…" + value[-4:] if len(value) > 16 else value


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@cache
def _asset(name: str) -> str:
    return (resources.files("consentledger.audit") / "templates" / name).read_text(encoding="utf-8")
