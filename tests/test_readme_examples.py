"""README.md's shell examples, run as written, in order, in one bash session against `scripts/demo.py --serve`.

Every ```sh block of the README runs, after `source .demo/env`, as `make demo-serve` leaves things, so a command
the README shows that stops working fails this test. A block that cannot run against the served demo (a foreground
chain, docker, a PostgreSQL replica sample, `make` itself) carries `<!-- not run: reason -->` right before it, and
those blocks must be exactly `NOT_RUN`: none is skipped silently.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEMO = ROOT / "scripts" / "demo.py"

NOT_RUN = [
    "make demo    # bootstraps .venv and node_modules, starts a local chain, runs the sharing story, prints the trace",
    ".venv/bin/consentledger chain up            # RPC URL: http://127.0.0.1:<port>",
    "cd mynet && docker compose up -d   # 4 validators + an RPC node on 127.0.0.1:8545",
    '# agency.toml: store_url = "postgresql://agency@db.internal:5432/health"',
]
"""The first lines of the blocks marked `<!-- not run: … -->`."""

BLOCK = re.compile(r"(?:<!-- not run: (?P<reason>[^\n]*?) -->\n)?```sh\n(?P<body>.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One ```sh block of the README: its text and, when it is marked not to run, why."""

    body: str
    not_run: str | None

    @property
    def first_line(self) -> str:
        """Return the block's first line."""
        return self.body.splitlines()[0]


def readme_blocks() -> list[Block]:
    """Return every ```sh block of the README, in order."""
    return [Block(m["body"], m["reason"]) for m in BLOCK.finditer(README.read_text())]


def test_the_blocks_marked_not_run_are_exactly_the_known_ones() -> None:
    """A block is skipped only with a marker and a reason, and only the blocks listed here carry one."""
    blocks = readme_blocks()
    assert len(blocks) == README.read_text().count("```sh\n")
    marked = [block.first_line for block in blocks if block.not_run is not None]
    assert marked == NOT_RUN
    assert all(block.not_run for block in blocks if block.not_run is not None)


@pytest.mark.timeout(1200)
def test_every_readme_example_runs_as_written_against_the_served_demo(tmp_path: Path) -> None:
    """The README's runnable blocks, joined in order into one `bash -e -o pipefail` script, exit 0 against the demo,
    and what they print shows the refusals and outcomes the README describes."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    log = tmp_path / "readme.log"
    demo = subprocess.Popen([sys.executable, str(DEMO), "--serve", "--workdir", ".demo"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        story = _read_until(demo, "▸ serving:", timeout=300)
        assert (tmp_path / ".demo" / "env").is_file(), story
        script = _script([block for block in readme_blocks() if block.not_run is None])
        # a pipe, not a file: the examples' `tee /dev/stderr` would truncate a file; its own process group, so
        # whatever the examples start in the background goes with it
        shell = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path,
                                 env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        pump = threading.Thread(target=_copy, args=(shell, log), daemon=True)
        pump.start()
        try:
            code = shell.wait(timeout=900)
        finally:
            _stop_group(shell)
            pump.join(timeout=60)
    finally:
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=60)
    out = log.read_text()
    assert code == 0, out[-8000:]
    assert demo.returncode == 0, rest
    _assert_the_story_was_told(story)
    assert "gateways stopped" in rest and "chain stopped" in rest
    for shown in (
        "proposal 1: executed",  # the Operators section's own deployment
        "balance of ",  # `chain fund` paid the new agency's signer
        '"state": "registered"',
        "verified: actor",
        '"state": "granted"',
        "AccessLedgerConsentCountMismatch",  # the batch's item without a consent
        "no discrepancies",
        "pseudonym:",
        "distinct subjects who attested its sources",
        '"cases": 2',
        "is in use by a running gateway",  # rotate-kek while the gateway runs
        "rotated KEK",
        "is now current",
        "record_destroyed",
        "RecordRegistryRecordTombstoned",
        '"revocation": "on chain"',
        "swept at block",
        "LegalBasesMandateWrongPurpose",  # a mandate used for another purpose
        "LegalBasesMandateRevoked",  # and after governance revoked it
        "matches the chain",  # an override's justification, checked by the auditor
        "valid: ",  # a receipt verified offline
        "audit view",  # `audit open` for the auditor
        "subject view",  # and for the subject
    ):
        assert shown in out, f"{shown!r} not in the README's output:\n{out[-8000:]}"


def _assert_the_story_was_told(story: str) -> None:
    """The demo's story: governance, ingest, a refused field, consent, one access, one refusal, the trace verified."""
    assert story.count("approved 2 of 3 and executed") == 7
    assert "admitted health bureau" in story and "admitted transport bureau" in story
    assert "HTTP 422 fields not on the positive list of category 'contact-trace': blood_type" in story
    assert "access seq 1 recorded" in story
    assert "'district': 'North'" in story  # the requester decrypted the custodian's record
    assert "commitment: {'district': 'North', 'visited_at': '2026-11-20'}" in story
    assert "identifying fields withheld (name, phone)" in story
    assert "refused on chain: HTTP 403 ConsentRegistryConsentExhausted" in story
    assert "transport bureau" in story and "verified" in story
    assert "`consentledger audit verify`: verified 1 records" in story and "no discrepancies" in story
    assert "recorded under statutory mandate 1 (basis mandate)" in story
    assert "refused: HTTP 403" in story and "recorded as an emergency override" in story
    assert "matches the chain" in story and "reviewed: accepted" in story
    assert "mandate 1" in story and "emergency override" in story  # the trace's legal basis column


def _copy(process: subprocess.Popen[bytes], log: Path) -> None:
    """Copy what `process` prints into `log` as it comes (the log shows how far the examples got)."""
    assert process.stdout is not None
    with log.open("wb") as out:
        for line in process.stdout:
            out.write(line)
            out.flush()


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop `process`'s whole process group (SIGTERM), if any of it is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def _script(blocks: list[Block]) -> str:
    """Return one bash script running `blocks` in order after `source .demo/env`, stopping what they started."""
    parts = ["trap 'kill $(jobs -p) 2>/dev/null || true' EXIT", "source .demo/env"]
    for number, block in enumerate(blocks, 1):
        parts.append(f"echo '### README block {number}: {block.first_line[:60].replace(chr(39), '')}'")
        parts.append(block.body)
    return "\n".join(parts) + "\n"


def _read_until(process: subprocess.Popen[str], marker: str, *, timeout: float) -> str:
    """Return the process's output up to and including the line holding `marker` (fail if it exits first)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the demo ended before serving:\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError("the demo did not start serving in time:\n" + "".join(seen))
