"""`make demo`'s story runs end to end on a real chain and tells the right outcome."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consentledger.chain.node import LocalNode

pytestmark = pytest.mark.process

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def test_demo_story_on_the_shared_ganache(ganache: LocalNode, tmp_path: Path) -> None:
    """Two gateway processes: ingest, a refused field, consent, one decrypted access, one refusal, history."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--rpc", ganache.rpc_url, "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("approved 2 of 3 and executed") == 2
    assert "admitted health bureau" in out and "admitted transport bureau" in out
    assert "HTTP 422 fields not on the positive list of category 'contact-trace': blood_type" in out
    assert "access seq 1 recorded" in out
    assert "'district': 'North'" in out  # the requester decrypted the custodian's record
    assert "commitment: {'district': 'North', 'visited_at': '2026-11-20'}" in out
    assert "identifying fields withheld (name, phone)" in out
    assert "refused on chain: HTTP 403 ConsentRegistryConsentExhausted" in out
    assert "transport bureau" in out and "verified" in out
    assert "gateways stopped" in out


def test_demo_starts_and_stops_its_own_anvil(tmp_path: Path) -> None:
    """With no --rpc the demo starts a chain itself (anvil here) and stops chain and gateways at the end."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--chain", "anvil", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chain stopped" in result.stdout and "verified" in result.stdout
    assert not _orphans(tmp_path / "demo")


def _orphans(workdir: Path) -> list[str]:
    """Return the command lines of processes still serving this demo's gateway configs."""
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if str(workdir) in line and "gateway serve" in line]
