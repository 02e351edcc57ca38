"""Records of processing: each agency's activities as custodian and as requester, from the index alone."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

import pytest
from eth_utils import keccak
from sqlalchemy import Engine

from consentledger import audit
from consentledger import governance as gov
from consentledger.audit.processing import CSV_FIELDS, find_member, processing_record
from consentledger.consent import Consent, sign_consent
from consentledger.errors import NotFoundError
from consentledger.types import Role, TombstoneReason

from .test_audit_cli import run_cli
from .world import CONTACT, DAY, FLEETING, FLEETING_RETENTION, RESEARCH, World, record_id

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def grown(world: World) -> World:
    """The audit world plus: transport also a custodian (police reads its record, identified), and a record
    of health's destroyed at the end of its retention."""
    world.govern(gov.set_roles(world.transport.address, Role.REQUESTER | Role.CUSTODIAN))
    ledger = world.ledger()
    rid = record_id("transport-contact")
    ledger.register_record(ledger.sender(world.transport), rid, world.bob.address, CONTACT,
                           keccak(text="commitment:transport-contact"), [])
    world.records["transport-contact"] = rid
    terms = Consent.new(subject=world.bob.address, grantee=world.police.address, category=CONTACT, purpose=RESEARCH,
                        record=rid, max_uses=1, valid_until=world.now() + DAY, identified=True)
    ledger.grant_consent(ledger.sender(world.relayer), terms, sign_consent(terms, world.bob.key, ledger.domain()))
    world.consents["transport-contact"] = terms
    world.access(world.police, "transport-contact", RESEARCH, ["transport-contact"])

    world.register("fleeting-alice", world.alice, FLEETING)
    world.advance(FLEETING_RETENTION + 1)
    ledger = world.ledger()
    ledger.tombstone(ledger.sender(world.health), world.records["fleeting-alice"], TombstoneReason.RETENTION)
    return world


@pytest.fixture
def indexed(grown: World, engine: Engine) -> Engine:
    """The grown world indexed into the parametrized backend."""
    audit.Indexer(engine, grown.ledger()).sync()
    return engine


def _custodian(name: str, address: str, category: tuple[int, str, str, str, str, int], records: int, live: int,
               subjects: int, destroyed: tuple[int, int, int, int], purposes: str, recipients: str, accesses: int,
               identified: int, bases: str) -> dict[str, object]:
    cid, cname, fields, identifying, sensitivity, retention = category
    return {
        "role": "custodian", "org": address, "org_name": name, "purpose": "", "purpose_name": "", "category": cid,
        "category_name": cname, "fields": fields, "identifying_fields": identifying, "sensitivity": sensitivity,
        "retention_seconds": retention, "records": records, "live_records": live, "subjects": subjects,
        "destroyed_retention": destroyed[0], "destroyed_erasure": destroyed[1], "destroyed_sunset": destroyed[2],
        "destroyed_other": destroyed[3], "purposes": purposes, "recipients": recipients, "custodians": "",
        "accesses": accesses, "identified": identified, "not_identified": accesses - identified, "legal_bases": bases,
    }


def _requester(name: str, address: str, purpose: tuple[int, str], category: tuple[int, str, str, str, str, int],
               custodians: str, records: int, subjects: int, accesses: int, identified: int,
               bases: str) -> dict[str, object]:
    cid, cname, fields, identifying, sensitivity, retention = category
    return {
        "role": "requester", "org": address, "org_name": name, "purpose": purpose[0], "purpose_name": purpose[1],
        "category": cid, "category_name": cname, "fields": fields, "identifying_fields": identifying,
        "sensitivity": sensitivity, "retention_seconds": retention, "records": records, "live_records": "",
        "subjects": subjects, "destroyed_retention": "", "destroyed_erasure": "", "destroyed_sunset": "",
        "destroyed_other": "", "purposes": "", "recipients": "", "custodians": custodians, "accesses": accesses,
        "identified": identified, "not_identified": accesses - identified, "legal_bases": bases,
    }


CONTACT_TERMS = (1, "contact-trace", "name;phone", "name", "one_time", 30 * DAY)
LAB_TERMS = (2, "lab-result", "test;result", "", "protected", 90 * DAY)
STATS_TERMS = (3, "district-stats", "district;cases", "", "open", 365 * DAY)
FLEETING_TERMS = (4, "fleeting", "note", "", "open", FLEETING_RETENTION)
EPIDEMIC_PURPOSE, RESEARCH_PURPOSE = (1, "epidemic-control"), (2, "research")


def test_custodian_record_lists_each_held_category(grown: World, indexed: Engine) -> None:
    """Per category held: terms, records and subjects (derived records' sources included), purposes, recipients,
    legal bases and records destroyed by reason."""
    health = grown.health.address
    assert processing_record(indexed, "health bureau").csv_rows() == [
        # contact-alice, contact-bob, and the record derived from contact-alice and stats-bob.
        _custodian("health bureau", health, CONTACT_TERMS, 3, 3, 2, (0, 0, 0, 0), "epidemic-control;research",
                   "police;transport bureau", 3, 0, "consent=3"),
        _custodian("health bureau", health, LAB_TERMS, 1, 1, 1, (0, 0, 0, 0), "epidemic-control",
                   "transport bureau", 3, 0, "consent=3"),
        # stats-bob, the erased record, and the anonymous aggregate over alice's and bob's records.
        _custodian("health bureau", health, STATS_TERMS, 3, 2, 2, (0, 1, 0, 0), "epidemic-control;research",
                   "police", 2, 0, "open=2"),
        _custodian("health bureau", health, FLEETING_TERMS, 1, 0, 1, (1, 0, 0, 0), "", "", 0, 0, ""),
    ]


def test_requester_record_lists_each_purpose_and_category(grown: World, indexed: Engine) -> None:
    """Per purpose and category received: custodians by name, records, subjects, accesses identified or not, bases."""
    police = grown.police.address
    assert processing_record(indexed, police).csv_rows() == [
        _requester("police", police, EPIDEMIC_PURPOSE, STATS_TERMS, "health bureau", 1, 1, 1, 0, "open=1"),
        _requester("police", police, RESEARCH_PURPOSE, CONTACT_TERMS, "health bureau;transport bureau", 2, 1, 2, 1,
                   "consent=2"),
        _requester("police", police, RESEARCH_PURPOSE, STATS_TERMS, "health bureau", 1, 1, 1, 0, "open=1"),
    ]


def test_an_agency_that_holds_and_requests_has_both_kinds_of_rows(grown: World, indexed: Engine) -> None:
    """Transport, requester and custodian, lists what it holds and what it received; every row has every column."""
    transport = grown.transport.address
    rows = processing_record(indexed, transport.lower()).csv_rows()
    assert rows == [
        _custodian("transport bureau", transport, CONTACT_TERMS, 1, 1, 1, (0, 0, 0, 0), "research", "police", 1, 1,
                   "consent=1"),
        # contact-alice, and the record derived from alice's and bob's records.
        _requester("transport bureau", transport, EPIDEMIC_PURPOSE, CONTACT_TERMS, "health bureau", 2, 2, 2, 0,
                   "consent=2"),
        _requester("transport bureau", transport, EPIDEMIC_PURPOSE, LAB_TERMS, "health bureau", 1, 1, 3, 0,
                   "consent=3"),
    ]
    assert all(tuple(row) == CSV_FIELDS for row in rows)


def test_a_member_with_no_activity_has_an_empty_record(grown: World, indexed: Engine) -> None:
    """The consortium admin is a member that neither holds nor received anything."""
    record = processing_record(indexed, "ministry")
    assert (record.member.address, record.held, record.received) == (grown.admin.address, (), ())


def test_an_unknown_org_is_not_found(grown: World, indexed: Engine) -> None:
    """A name no member has, or an address that is no member, raises NotFoundError naming it."""
    assert find_member(indexed, grown.police.address.lower()).name == "police"
    with pytest.raises(NotFoundError, match="no member 'nobody' in the audit index"):
        processing_record(indexed, "nobody")
    with pytest.raises(NotFoundError, match="no member '0x0000000000000000000000000000000000000001'"):
        processing_record(indexed, "0x0000000000000000000000000000000000000001")


@pytest.fixture
def workdir(grown: World, tmp_path: Path) -> Path:
    """A directory holding the grown world's deployment manifest."""
    grown.deployment.save(tmp_path / "deployment.json")
    return tmp_path


def test_cli_writes_the_record_as_csv_and_as_tables(grown: World, workdir: Path) -> None:
    """`audit processing --org NAME --csv` indexes the chain and prints every row; without --csv, tables."""
    as_csv = run_cli("audit", "processing", "--org", "police", "--csv", "--rpc", grown.rpc_url, cwd=workdir)
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.splitlines()[0] == ",".join(CSV_FIELDS)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    police = grown.police.address
    assert rows == [
        {k: str(v) for k, v in row.items()} for row in (
            _requester("police", police, EPIDEMIC_PURPOSE, STATS_TERMS, "health bureau", 1, 1, 1, 0, "open=1"),
            _requester("police", police, RESEARCH_PURPOSE, CONTACT_TERMS, "health bureau;transport bureau", 2, 1, 2,
                       1, "consent=2"),
            _requester("police", police, RESEARCH_PURPOSE, STATS_TERMS, "health bureau", 1, 1, 1, 0, "open=1"),
        )
    ]

    table = run_cli("audit", "processing", "--org", grown.health.address, "--no-sync", cwd=workdir)
    assert table.returncode == 0, table.stderr
    assert f"Record of processing activities: health bureau ({grown.health.address})" in table.stdout
    assert "4 categories held, 0 purpose/category pairs received" in table.stdout
    assert "erasure 1" in table.stdout and "retention 1" in table.stdout


def test_cli_refuses_an_unknown_org_in_one_line(grown: World, workdir: Path) -> None:
    """An org that is no member is one error line and exit code 8 (not found)."""
    run_cli("index", "--rpc", grown.rpc_url, cwd=workdir)
    unknown = run_cli("audit", "processing", "--org", "nobody", "--no-sync", cwd=workdir)
    assert unknown.returncode == NotFoundError.exit_code == 8
    assert unknown.stderr.strip() == "error: no member 'nobody' in the audit index"
    assert unknown.stdout == ""


class _Cells(HTMLParser):
    """Collects, under section#processing, each agency heading and the text of each table row's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.org, self.cell = False, "", None
        self.rows: dict[str, list[list[str]]] = {}
        self._row: list[str] | None = None
        self._heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.inside = dict(attrs).get("id") == "processing"
        elif self.inside and tag == "h3":
            self.org, self._heading = dict(attrs)["data-org"] or "", True
        elif self.inside and tag == "tbody":
            self.rows.setdefault(self.org, [])
        elif self.inside and tag == "tr" and self.org in self.rows:
            self._row = []
        elif self._row is not None and tag == "td":
            self._row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.inside = False
        elif tag == "h3":
            self._heading = False
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.rows[self.org].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row:
            self._row[-1] += data


def test_the_audit_report_has_each_agencys_record_of_processing(grown: World, workdir: Path) -> None:
    """`audit report` ends with a "Records of processing" section: every agency's held and received rows."""
    made = run_cli("audit", "report", "--out", "page.html", "--rpc", grown.rpc_url, cwd=workdir)
    assert made.returncode == 0, made.stderr
    page = (workdir / "page.html").read_text()
    assert "<h2>Records of processing</h2>" in page
    cells = _Cells()
    cells.feed(page)
    assert cells.rows == {
        grown.health.address: [
            ["contact-trace", "name, phone", "one_time", "30 days", "3 (3)", "2", "epidemic-control, research",
             "police, transport bureau", "3 (0)", "consent=3", "-"],
            ["lab-result", "test, result", "protected", "90 days", "1 (1)", "1", "epidemic-control",
             "transport bureau", "3 (0)", "consent=3", "-"],
            ["district-stats", "district, cases", "open", "365 days", "3 (2)", "2", "epidemic-control, research",
             "police", "2 (0)", "open=2", "erasure 1"],
            ["fleeting", "note", "open", "2 s", "1 (0)", "1", "-", "-", "0 (0)", "-", "retention 1"],
        ],
        grown.transport.address: [
            ["contact-trace", "name, phone", "one_time", "30 days", "1 (1)", "1", "research", "police", "1 (1)",
             "consent=1", "-"],
            ["epidemic-control", "contact-trace", "health bureau", "2", "2", "2", "0", "2", "consent=2"],
            ["epidemic-control", "lab-result", "health bureau", "1", "1", "3", "0", "3", "consent=3"],
        ],
        grown.police.address: [
            ["epidemic-control", "district-stats", "health bureau", "1", "1", "1", "0", "1", "open=1"],
            ["research", "contact-trace", "health bureau, transport bureau", "2", "1", "2", "1", "1", "consent=2"],
            ["research", "district-stats", "health bureau", "1", "1", "1", "0", "1", "open=1"],
        ],
    }
    mine = run_cli("audit", "report", "--out", "alice.html", "--subject", grown.alice.address, "--rpc",
                   grown.rpc_url, cwd=workdir)
    assert mine.returncode == 0, mine.stderr
    assert 'id="processing"' not in (workdir / "alice.html").read_text()
