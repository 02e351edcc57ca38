"""`make demo`'s story runs end to end on a real chain and tells the right outcome."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consentledger.chain.node import LocalNode

pytestmark = pytest.mark.process

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def test_demo_story_on_the_shared_ganache(ganache: LocalNode) -> None:
    """Governance, consent, one recorded access, one refusal, and a verified hash chain."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--rpc", ganache.rpc_url], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("approved 2 of 3 and executed") == 4
    assert "access recorded: seq 1" in out
    assert "refused on chain: ConsentRegistryConsentExhausted" in out
    assert "transport bureau" in out and "verified" in out


def test_demo_starts_and_stops_its_own_anvil() -> None:
    """With no --rpc the demo starts a chain itself (anvil here) and stops it at the end."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--chain", "anvil"], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chain stopped" in result.stdout and "verified" in result.stdout
