"""The auditor's commands as a user runs them: index, trace (table, JSON, CSV; accesses or refused attempts) and
verify's exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from consentledger import audit
from consentledger.audit import tables as t
from consentledger.store import make_engine

from .world import REFUSED, RESEARCH, World, hexid

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the console script in `cwd` (which holds deployment.json); return its completed process."""
    env = {**os.environ, "CONSENTLEDGER_MANIFEST": str(cwd / "deployment.json")}
    env.pop("CONSENTLEDGER_AUDIT_DB", None)
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(world: World, tmp_path: Path) -> Path:
    """A directory holding the world's deployment manifest."""
    world.deployment.save(tmp_path / "deployment.json")
    return tmp_path


def test_index_then_trace_as_table_json_and_csv(world: World, workdir: Path) -> None:
    """`index` fills audit.db; `audit trace` prints a table, parseable JSON, or parseable CSV."""
    rpc = ("--rpc", world.rpc_url)
    indexed = run_cli("index", *rpc, cwd=workdir)
    assert indexed.returncode == 0, indexed.stderr
    assert f"indexed blocks {world.deployment.deploy_block}.." in indexed.stdout
    assert (workdir / "audit.db").exists()

    table = run_cli("audit", "trace", "--subject", world.alice.address, *rpc, cwd=workdir)
    assert table.returncode == 0, table.stderr
    assert "transport bureau" in table.stdout and "5 accesses" in table.stdout

    as_json = run_cli("audit", "trace", "--subject", world.alice.address, "--json", *rpc, cwd=workdir)
    assert as_json.returncode == 0, as_json.stderr
    lines = json.loads(as_json.stdout)
    assert len(lines) == 5 and lines[0]["requester_name"] == "transport bureau"

    as_csv = run_cli("audit", "trace", "--org", world.police.address, "--purpose", "research", "--csv",
                     "--no-sync", cwd=workdir)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows and {r["requester"] for r in rows} == {world.police.address}
    assert {r["purpose"] for r in rows} == {str(RESEARCH)}


def test_trace_refused_lists_refused_attempts_as_table_json_and_csv(world: World, workdir: Path) -> None:
    """`audit trace --refused` lists who was refused what and why; the access table says how many there are."""
    rpc = ("--rpc", world.rpc_url)
    accesses = run_cli("audit", "trace", "--subject", world.alice.address, *rpc, cwd=workdir)
    assert accesses.returncode == 0, accesses.stderr
    assert "3 refused attempts (--refused lists them)" in accesses.stdout

    table = run_cli("audit", "trace", "--refused", "--subject", world.alice.address, "--no-sync", cwd=workdir)
    assert table.returncode == 0, table.stderr
    assert "the consent was revoked" in table.stdout and "3 refused attempts" in table.stdout

    as_json = run_cli("audit", "trace", "--refused", "--org", world.police.address, "--json", "--no-sync",
                      cwd=workdir)
    assert as_json.returncode == 0, as_json.stderr
    refused = json.loads(as_json.stdout)
    assert [r["rule"] for r in refused] == [rule for who, *_, rule in REFUSED if who == "police"]
    assert refused[1]["why"] == "the record does not exist" and refused[1]["custodian"] is None

    as_csv = run_cli("audit", "trace", "--refused", "--record", hexid(world.records["stats-bob"]), "--csv",
                     "--no-sync", cwd=workdir)
    assert as_csv.returncode == 0, as_csv.stderr
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["requester_name"], row["rule"], row["why"]) == (
        "health bureau", "ConsortiumMissingRole", "the organisation lacks the requester role"
    )


def test_verify_exits_0_with_a_one_line_summary(world: World, workdir: Path) -> None:
    """A faithful index verifies: exit 0 and one summary line."""
    result = run_cli("audit", "verify", "--rpc", world.rpc_url, "--db", f"sqlite:///{workdir / 'v.db'}", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("verified ")


def test_verify_exits_1_listing_one_line_per_discrepancy(world: World, workdir: Path) -> None:
    """A tampered index makes verify exit 1, printing each discrepancy on its own line."""
    db = f"sqlite:///{workdir / 'tampered.db'}"
    engine = make_engine(db)
    audit.Indexer(engine, world.ledger()).sync()
    lab, contact = hexid(world.records["lab-alice"]), hexid(world.records["contact-alice"])
    with engine.begin() as conn:
        conn.execute(delete(t.accesses).where(t.accesses.c.record == lab, t.accesses.c.seq == 2))
        conn.execute(update(t.accesses).where(t.accesses.c.record == contact).values(purpose=RESEARCH))
    expected = audit.verify(engine, world.ledger())
    engine.dispose()

    result = run_cli("audit", "verify", "--rpc", world.rpc_url, "--db", db, cwd=workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    printed = result.stdout.splitlines()
    assert printed == [d.line() for d in expected.discrepancies]
    assert {line.split(" ")[0] for line in printed} == {
        "seq_gap", "head_mismatch", "entry_hash_mismatch", "wrong_purpose",
    }
    assert "discrepancies" in result.stderr


def _page_rows(page: str) -> dict[tuple[str, str], tuple[str, set[str]]]:
    """Return each access row of a report page by (record, seq): its visible text and its title attributes."""

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: dict[tuple[str, str], tuple[list[str], set[str]]] = {}
            self.current: tuple[list[str], set[str]] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            if tag == "tr" and named.get("data-seq"):
                self.current = ([], set())
                self.rows[(str(named["data-record"]), str(named["data-seq"]))] = self.current
            elif self.current is not None and named.get("title"):
                self.current[1].add(str(named["title"]))

        def handle_endtag(self, tag: str) -> None:
            if tag == "tr":
                self.current = None
            elif tag == "td" and self.current is not None:
                self.current[0].append(" | ")

        def handle_data(self, data: str) -> None:
            if self.current is not None:
                self.current[0].append(data)

    parser = Rows()
    parser.feed(page)
    return {key: ("".join(text), titles) for key, (text, titles) in parser.rows.items()}


def test_the_report_page_shows_every_fact_of_the_trace_csv(world: World, workdir: Path) -> None:
    """For each row of `audit trace --csv`, the page's row for that record and seq shows every column's value."""
    rpc = ("--rpc", world.rpc_url)
    assert (indexed := run_cli("index", *rpc, cwd=workdir)).returncode == 0, indexed.stderr
    as_csv = run_cli("audit", "trace", "--csv", "--limit", "5000", "--no-sync", cwd=workdir)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    made = run_cli("audit", "report", "--out", str(workdir / "page.html"), *rpc, cwd=workdir)
    assert made.returncode == 0, made.stderr
    page_rows = _page_rows((workdir / "page.html").read_text(encoding="utf-8"))

    assert rows and len(page_rows) == len(rows)
    states = set()
    for row in rows:
        text, titles = page_rows[(row["record"], row["seq"])]
        cells = [cell.strip() for cell in text.split(" | ")]
        moment = datetime.fromisoformat(row["time"])
        assert moment == datetime.fromtimestamp(int(row["timestamp"]), UTC)
        assert cells[0] == moment.strftime("%Y-%m-%d %H:%M:%S") and cells[1] == row["seq"]
        assert cells[9] == ("identified" if row["identified"] == "True" else "withheld")
        assert row["block"] == cells[12] and f"· log {row['log_index']}" in cells[11]
        for shown_in_full in ("record", "subject", "actor", "consent", "tx_hash", "custodian", "requester"):
            assert not row[shown_in_full] or row[shown_in_full] in titles, (shown_in_full, row)
        for name, number, cell in (("category_name", "category", 4), ("purpose_name", "purpose", 8)):
            assert f"{row[name]} ({row[number]})" in cells[cell] if row[name] else row[number] in cells[cell]
        for name, cell in (("custodian_name", 5), ("requester_name", 6)):
            assert not row[name] or cells[cell] == row[name], (name, row)
        terms = re.fullmatch(r".+ (live|revoked|expired|exhausted): .+ \(\d+\), .+, until .+ UTC, \d+ of \d+ uses, "
                             r"(identified|not identified)", cells[10])
        assert (terms or "source consents, combined" in cells[10]) if row["consent"] else cells[10].startswith("none")
        states |= {terms.group(1)} if terms else set()
    assert {"live", "revoked"} <= states  # the world revokes one consent after using it
