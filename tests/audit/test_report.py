"""The audit page on a real indexed consortium: graph, legend, timeline, verdict, escaping, CLI, and a browser."""

from __future__ import annotations

import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, delete

from consentledger import audit
from consentledger import governance as gov
from consentledger.audit import lifecycle
from consentledger.audit import tables as t
from consentledger.audit.render import flow_edges, render_audit_page
from consentledger.store import make_engine
from consentledger.types import Role, TombstoneReason

from .test_audit_cli import run_cli
from .world import ANALYST, EPIDEMIC, REFUSED, RESEARCH, STATS, World, hexid

pytestmark = pytest.mark.process

HOSTILE_MEMBER = "<script>alert(1)</script>"
HOSTILE_PURPOSE = '"><img src=x onerror=alert(2)>'
OUTREACH = 3
TITLE = "Audit report: who accessed what"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Element:
    """A parsed element: its tag, attributes, children and all the text inside it (entities decoded)."""

    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def iter(self, tag: str, cls: str | None = None) -> Iterator[Element]:
        """Yield every descendant with this tag (and class, if given), in document order."""
        for child in self.children:
            if child.tag == tag and (cls is None or cls in child.attrs.get("class", "").split()):
                yield child
            yield from child.iter(tag, cls)

    def one(self, tag: str, cls: str | None = None) -> Element:
        """Return the only descendant with this tag (and class)."""
        [found] = list(self.iter(tag, cls))
        return found


class _TreeBuilder(HTMLParser):
    VOID = frozenset({"meta", "input", "br", "base", "link", "img", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(page: str) -> Element:
    """Return the page's element tree."""
    builder = _TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


@dataclass(frozen=True)
class Audited:
    """The consortium indexed, traced and verified, and its rendered page."""

    world: World
    intruder: LocalAccount
    engine: Engine
    lines: list[audit.TraceLine]
    refused: list[audit.RefusalLine]
    report: audit.VerifyReport
    page: str


def fund(world: World, account: LocalAccount) -> None:
    """Send `account` 1 ether from the relayer so it can pay for its own transactions."""
    w3, relayer = world.w3, world.relayer
    transfer = relayer.sign_transaction({
        "to": account.address, "value": 10**18, "gas": 21_000, "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(relayer.address, "pending"), "chainId": w3.eth.chain_id,
    })
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(transfer.raw_transaction))


@pytest.fixture(scope="module")
def audited(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    """The world plus a requester and a purpose named with markup (one access, one refused attempt), indexed and
    rendered."""
    intruder = Account.create()
    fund(world, intruder)
    world.govern(
        gov.add_purpose(OUTREACH, HOSTILE_PURPOSE),
        gov.set_category_purposes(STATS, [EPIDEMIC, RESEARCH, OUTREACH]),
        gov.admit_member(intruder.address, Role.REQUESTER, HOSTILE_MEMBER, b"\x04" * 32, "http://intruder"),
    )
    world.access(intruder, "stats-bob", OUTREACH)
    world.batch(intruder, [world.request("erased", OUTREACH)])
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('report') / 'index.db'}")
    audit.Indexer(engine, world.ledger()).sync()
    lines = audit.trace(engine)
    refused = audit.refusals(engine)
    report = audit.verify(engine, world.ledger())
    page = render_audit_page(lines, report, title=TITLE, period=(None, None), refusals=refused)
    yield Audited(world, intruder, engine, lines, refused, report, page)
    engine.dispose()


def edges(page: str) -> list[Element]:
    """Return the page's SVG edge groups."""
    return list(parse(page).one("svg").iter("g", "edge"))


def access_rows(tree: Element) -> list[Element]:
    """Return the access rows of the page's timeline (not the rows marking seq jumps or destroyed records)."""
    [table] = [e for e in tree.iter("table") if e.attrs.get("id") == "accesses"]
    return [row for row in table.one("tbody").iter("tr") if "data-seq" in row.attrs]


def refused_rows(tree: Element) -> list[Element]:
    """Return the rows of the page's refused attempts."""
    [table] = [e for e in tree.iter("table") if e.attrs.get("id") == "refused"]
    return list(table.one("tbody").iter("tr"))


def test_the_graph_has_one_edge_per_custodian_requester_and_purpose(audited: Audited) -> None:
    """Health's records flow to transport (epidemic ×5), police (epidemic ×1, research ×2), the intruder (×1)."""
    w = audited.world
    found = {
        (e.attrs["data-custodian"], e.attrs["data-requester"], int(e.attrs["data-purpose"]), int(e.attrs["data-count"]))
        for e in edges(audited.page)
    }
    health = w.health.address
    assert found == {
        (health, w.transport.address, EPIDEMIC, 5), (health, w.police.address, EPIDEMIC, 1),
        (health, w.police.address, RESEARCH, 2), (health, audited.intruder.address, OUTREACH, 1),
    }
    labels = {e.one("text").text for e in edges(audited.page)}
    assert labels == {"5 × epidemic-control", "1 × epidemic-control", "2 × research", f"1 × {HOSTILE_PURPOSE}"}


def test_edge_widths_grow_with_the_number_of_accesses(audited: Audited) -> None:
    """A busier edge is drawn wider; equally busy edges equally wide."""
    drawn = sorted(
        (int(e.attrs["data-count"]), float(e.one("path").attrs["stroke-width"])) for e in edges(audited.page)
    )
    for (count, width), (next_count, next_width) in zip(drawn, drawn[1:], strict=False):
        assert next_width > width if next_count > count else next_width == width
    assert drawn[-1] == (5, 14.0)


def test_organisations_are_named_custodians_left_requesters_right(audited: Audited) -> None:
    """One box per custodian on the left, one per requester on the right, each labelled with the member's name."""
    svg = parse(audited.page).one("svg")
    custodians = list(svg.iter("g", "custodian"))
    requesters = list(svg.iter("g", "requester"))
    assert [n.one("text").text for n in custodians] == ["health bureau"]
    assert sorted(n.one("text").text for n in requesters) == sorted(
        ["transport bureau", "police", HOSTILE_MEMBER]
    )
    assert max(float(n.one("rect").attrs["x"]) for n in custodians) < min(
        float(n.one("rect").attrs["x"]) for n in requesters
    )


def test_the_legend_gives_each_purpose_one_colour_that_its_edges_use(audited: Audited) -> None:
    """Three purposes, three distinct colours, and every edge is stroked in its purpose's colour."""
    legend = parse(audited.page).one("g", "legend")
    colours = {int(i.attrs["data-purpose"]): i.one("line").attrs["stroke"] for i in legend.iter("g", "legend-item")}
    assert set(colours) == {EPIDEMIC, RESEARCH, OUTREACH} and len(set(colours.values())) == 3
    for edge in edges(audited.page):
        assert edge.one("path").attrs["stroke"] == colours[int(edge.attrs["data-purpose"])]
    assert "epidemic-control (purpose 1): 6 accesses" in legend.text


def test_every_access_has_a_row_carrying_its_data(audited: Audited) -> None:
    """The timeline has one row per indexed access, in chain order, with its data-* attributes."""
    rows = access_rows(parse(audited.page))
    assert len(rows) == len(audited.lines) == len(audited.world.entries())
    for row, line in zip(rows, audited.lines, strict=True):
        assert (row.attrs["data-tx"], row.attrs["data-record"], int(row.attrs["data-seq"])) == (
            line.tx_hash, line.record, line.seq
        )
        assert row.attrs["data-requester"] == line.requester and int(row.attrs["data-purpose"]) == line.purpose
        assert (line.requester_name or "") in row.text and str(line.block) in row.text
    assert Counter(r.attrs["data-requester"] for r in rows)[audited.world.police.address] == 3


def test_refused_attempts_are_listed_with_who_what_and_why_in_plain_words(audited: Audited) -> None:
    """The "Refused attempts" section has one row per refusal, in chain order: requester name, actor, record,
    purpose, the rule's sentence and name; the header counts them; they are no access rows."""
    w = audited.world
    tree = parse(audited.page)
    section = next(e for e in tree.iter("section") if e.attrs.get("id") == "refusals")
    assert section.one("h2").text == "Refused attempts"
    rows = refused_rows(tree)
    assert [r.attrs["data-rule"] for r in rows] == [rule for *_, rule in REFUSED] + ["RecordRegistryRecordTombstoned"]
    assert len(rows) == len(audited.refused)
    first = rows[0]
    assert first.attrs["data-record"] == hexid(w.records["lab-alice"])
    assert (first.attrs["data-requester"], first.attrs["data-actor"]) == (w.transport.address, hexid(ANALYST))
    assert "transport bureau" in first.text and "lab-result (2)" in first.text and "epidemic-control (1)" in first.text
    assert "the consent was revoked" in first.text and "(ConsentRegistryConsentRevoked)" in first.text
    whys = [r.one("span", "why").text for r in rows]
    assert whys[1] == "the consent's uses were used up" and whys[2] == "the record was destroyed"
    assert whys[5] == "the organisation lacks the requester role"
    assert "organisation" in rows[1].text  # no actor: the organisation itself
    assert f"{len(audited.refused)} refused attempts" in tree.one("header").text
    assert {r.attrs["data-record"] for r in access_rows(tree)}.isdisjoint({hexid(w.records["erased"])})
    empty = parse(render_audit_page([], None, title="Your data", period=(None, None)))
    assert "No refused attempts in this period." in empty.text
    assert not [e for e in empty.iter("table") if e.attrs.get("id") == "refused"]


def test_the_header_shows_period_counts_and_a_clean_verification(audited: Audited) -> None:
    """A faithful index: "Verified: no discrepancies", the open period, and the access count."""
    assert audited.report.ok
    header = parse(audited.page).one("header")
    assert "Period: the beginning to now" in header.text
    assert f"{len(audited.lines)} accesses" in header.text and "1 custodians" in header.text
    assert "Verified: no discrepancies." in header.one("section").text
    since = datetime(2024, 1, 1, tzinfo=UTC)
    bounded = render_audit_page(audited.lines, None, title=TITLE, period=(since, None))
    assert "Period: 2024-01-01 00:00:00+00:00 to now" in bounded and "Not verified." in bounded


def test_a_planted_discrepancy_is_listed_and_its_access_flagged(audited: Audited, sqlite_engine: Engine) -> None:
    """Deleting lab-alice's access 2 shows a seq gap and a head mismatch, flags the row of access 3, and marks the
    jump in the timeline ("missing"; on a filtered page "not on this page")."""
    w = audited.world
    audit.Indexer(sqlite_engine, w.ledger()).sync()
    lab = hexid(w.records["lab-alice"])
    with sqlite_engine.begin() as conn:
        conn.execute(delete(t.accesses).where(t.accesses.c.record == lab, t.accesses.c.seq == 2))
    report = audit.verify(sqlite_engine, w.ledger())
    lines = audit.trace(sqlite_engine)
    page = parse(render_audit_page(lines, report, title=TITLE, period=(None, None)))
    verdict = page.one("section", "verification")
    assert "bad" in verdict.attrs["class"] and "2 discrepancies found." in verdict.text
    assert [r.attrs["data-kind"] for r in verdict.iter("tr", "discrepancy")] == [
        d.kind.value for d in report.discrepancies
    ] == ["seq_gap", "head_mismatch"]
    assert "missing" in verdict.text and lab in verdict.text
    flagged = list(page.iter("tr", "flagged"))
    assert [(r.attrs["data-record"], r.attrs["data-seq"]) for r in flagged] == [(lab, "3")]
    [gap] = page.iter("tr", "gap")
    assert (gap.attrs["data-gap-record"], gap.attrs["data-gap-first"], gap.attrs["data-gap-last"]) == (lab, "2", "2")
    assert gap.text.startswith("seq 2 of record ") and "missing" in gap.text
    [accesses] = [table for table in page.iter("table") if table.attrs.get("id") == "accesses"]
    timeline = [r.attrs.get("data-seq") or "gap" for r in accesses.iter("tr")
                if lab in (r.attrs.get("data-record"), r.attrs.get("data-gap-record"))]
    assert timeline == ["1", "gap", "3"]
    filtered = parse(render_audit_page(lines, report, title=TITLE, period=(None, None), filtered=True))
    assert "not on this page (filtered out)" in next(filtered.iter("tr", "gap")).text


def test_markup_in_names_from_the_chain_is_shown_as_text(audited: Audited) -> None:
    """A member named <script>… and a purpose named "><img…> end up as text, never as elements."""
    page = audited.page
    assert HOSTILE_MEMBER not in page and HOSTILE_PURPOSE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&quot;&gt;&lt;img src=x" in page
    tree = parse(page)
    assert len(list(tree.iter("script"))) == 1 and not list(tree.iter("img"))
    assert "alert" not in tree.one("script").text
    assert any(HOSTILE_MEMBER in row.text for row in tree.iter("tr"))
    assert HOSTILE_MEMBER in refused_rows(tree)[-1].text  # the intruder's refused attempt, as text too
    assert any(o.text == f"{HOSTILE_PURPOSE} ({OUTREACH})" for o in tree.iter("option"))


def test_the_page_is_self_contained_and_locked_down(audited: Audited) -> None:
    """No src/href to anything outside, and a CSP that forbids every fetch and all but the page's own script."""
    tree = parse(audited.page)
    assert not [e for tag in ("link", "img", "iframe") for e in tree.iter(tag)]
    assert all("src" not in s.attrs for s in tree.iter("script"))
    assert not list(tree.iter("a")) and not list(tree.iter("base"))
    [csp] = [m.attrs["content"] for m in tree.iter("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp.startswith("default-src 'none';") and "script-src 'sha256-" in csp and "unsafe" not in csp


def test_base_href_links_records_organisations_and_purposes(audited: Audited) -> None:
    """Served under a base, records, organisations and purposes link to the trace filters relative to it."""
    tree = parse(render_audit_page(audited.lines, audited.report, title=TITLE, period=(None, None),
                                   base_href='/audit/"x'))
    assert tree.one("base").attrs["href"] == '/audit/"x'
    hrefs = {a.attrs["href"] for a in tree.iter("a")}
    first = audited.lines[0]
    assert {f"?record={first.record}", f"?org={first.requester}", f"?purpose={first.purpose}"} <= hrefs


def test_rendering_is_deterministic_and_copes_with_no_accesses(audited: Audited) -> None:
    """The same lines give the same bytes; no lines give an empty graph and an empty table."""
    again = render_audit_page(audited.lines, audited.report, title=TITLE, period=(None, None),
                              refusals=audited.refused)
    assert again == audited.page
    assert [e.count for e in flow_edges(audited.lines)] == [5, 2, 1, 1]
    empty = parse(render_audit_page([], None, title="Your data", period=(None, None)))
    assert "No accesses in this period." in empty.one("svg").text
    assert not access_rows(empty) and "Not verified." in empty.one("header").text


@pytest.fixture
def workdir(audited: Audited, tmp_path: Path) -> Path:
    """A directory holding the world's deployment manifest."""
    audited.world.deployment.save(tmp_path / "deployment.json")
    return tmp_path


def test_audit_report_writes_the_page_and_prints_its_path_and_a_summary(audited: Audited, workdir: Path) -> None:
    """`audit report --out` writes a 0644 HTML page and prints its path and one summary line."""
    out = workdir / "report.html"
    result = run_cli("audit", "report", "--out", str(out), "--rpc", audited.world.rpc_url, cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    path, summary = result.stdout.splitlines()
    assert path == str(out) and stat.S_IMODE(out.stat().st_mode) == 0o644
    n = len(audited.lines)
    assert summary.startswith(f"{n} accesses, 1 custodians → 3 requesters; verified up to block ")
    assert summary.endswith(f": no discrepancies; {len(audited.refused)} refused attempts")
    page = parse(out.read_text(encoding="utf-8"))
    assert page.one("head").one("title").text == TITLE and len(access_rows(page)) == n
    assert [r.attrs["data-tx"] for r in refused_rows(page)] == [line.tx_hash for line in audited.refused]


def test_audit_report_for_a_subject_and_a_period(audited: Audited, workdir: Path) -> None:
    """--subject makes a "Your data" page of that subject's accesses; --since in the future leaves none."""
    w = audited.world
    rpc = ("--rpc", w.rpc_url)
    mine = run_cli("audit", "report", "--out", "alice.html", "--subject", w.alice.address, *rpc, cwd=workdir)
    assert mine.returncode == 0, mine.stderr
    page = parse((workdir / "alice.html").read_text(encoding="utf-8"))
    assert page.one("head").one("title").text.startswith("Your data")
    assert len(access_rows(page)) == 5
    assert [r.attrs["data-rule"] for r in refused_rows(page)] == [
        "ConsentRegistryConsentRevoked", "ConsentRegistryConsentExhausted", "AccessLedgerConsentCountMismatch",
    ]
    later = run_cli("audit", "report", "--out", "later.html", "--since", "2999-01-01", *rpc, cwd=workdir)
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines()[1].startswith("0 accesses")
    assert "Period: 2999-01-01 00:00:00+00:00 to now" in (workdir / "later.html").read_text(encoding="utf-8")


def test_audit_report_pdf_prints_with_headless_chromium(audited: Audited, workdir: Path) -> None:
    """--pdf also writes OUT.pdf, printed by headless Chromium."""
    result = run_cli("audit", "report", "--out", "r.html", "--pdf", "--rpc", audited.world.rpc_url, cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    pdf = workdir / "r.pdf"
    assert result.stdout.splitlines()[1] == "r.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf.stat().st_size > 10_000


def test_the_page_filters_rows_in_headless_chromium_without_network(audited: Audited, tmp_path: Path) -> None:
    """In Chromium the page shows its edges, filters rows as one types, screenshots, and requests nothing."""
    from playwright.sync_api import sync_playwright

    w = audited.world
    html = tmp_path / "report.html"
    html.write_text(audited.page, encoding="utf-8")
    outside: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run",
        ])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route(lambda url: not url.startswith("file://"),
                          lambda route: (outside.append(route.request.url), route.abort())[-1])
            page = context.new_page()
            page.on("request", lambda r: None if r.url.startswith("file://") else outside.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss())[-1])
            page.goto(html.as_uri())

            assert page.title() == TITLE
            assert page.locator("svg.flow g.edge").count() == 4
            assert page.locator("svg.flow g.edge path").count() == 4
            rows = page.locator("#accesses tbody tr")
            assert rows.count() == len(audited.lines)
            visible = page.locator("#accesses tbody tr:visible")
            assert visible.count() == len(audited.lines)

            refused = page.locator("#refused tbody tr:visible")
            assert refused.count() == len(audited.refused)
            page.locator("#filter-requester").press_sequentially("poli")
            assert visible.count() == 3
            assert refused.count() == 3 and set(refused.evaluate_all("rs => rs.map(r => r.dataset.requester)")) == {
                w.police.address
            }
            assert page.locator("#shown-refused").text_content() == (
                f"3 of {len(audited.refused)} refused attempts shown"
            )
            assert set(visible.evaluate_all("rs => rs.map(r => r.dataset.requester)")) == {w.police.address}
            assert page.locator("#shown").text_content() == f"3 of {len(audited.lines)} accesses shown"
            assert page.locator("svg.flow g.edge.dim").count() == 2

            page.locator("#filter-purpose").select_option(str(RESEARCH))
            assert visible.count() == 2
            page.locator("#filter-requester").fill("")
            page.locator("#filter-purpose").select_option("")
            page.locator("#filter-record").press_sequentially("lab-result")
            assert visible.count() == 3
            assert set(visible.evaluate_all("rs => rs.map(r => r.dataset.record)")) == {hexid(w.records["lab-alice"])}
            page.locator("#filter-record").fill("")
            assert visible.count() == len(audited.lines)

            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    assert outside == [] and problems == []


def test_erasures_appear_in_the_timeline_and_a_custodian_with_nothing_left_shows_it(audited: Audited) -> None:
    """The erased record's tombstone is a timeline row in plain words; a custodian whose every shown record is
    destroyed is drawn as "held N records, all destroyed", not as holding them."""
    ended = lifecycle.tombstones(audited.engine)
    erased = hexid(audited.world.records["erased"])
    assert [(tombstone.record, tombstone.reason) for tombstone in ended] == [(erased, TombstoneReason.ERASURE)]
    page = parse(render_audit_page(audited.lines, None, title=TITLE, period=(None, None), tombstones=ended))
    [row] = page.iter("tr", "ended")
    assert (row.attrs["data-ended-record"], row.attrs["data-reason"]) == (erased, "erasure")
    assert "erased at the data subject's request" in row.text and f"block {ended[0].block}" in row.text
    assert not list(page.iter("g", "ended"))  # health still holds other records

    first = audited.lines[0]
    gone = [lifecycle.Tombstone(first.record, first.subject or "", first.custodian or "", TombstoneReason.RETENTION,
                                first.tx_hash, first.block + 1, int(first.time.timestamp()) + 1)]
    only = [line for line in audited.lines if line.record == first.record]
    [node] = parse(render_audit_page(only, None, title=TITLE, period=(None, None), tombstones=gone)).iter("g", "ended")
    assert node.attrs["data-address"] == first.custodian and "held 1 record, all destroyed" in node.text
