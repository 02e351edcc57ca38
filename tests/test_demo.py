"""`make demo` starts its own chain and leaves nothing running.

The story itself, served, is asserted by tests/test_readme_examples.py, which runs the README's examples against it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
CLI = str(Path(sys.executable).parent / "consentledger")


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
