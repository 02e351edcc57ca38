"""The committed example network in deploy/besu passes `check` and says its keys are examples only."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from consentledger.cli.main import run
from consentledger.network.besu.check import check_network
from consentledger.network.besu.generate import EXAMPLE_MARKER

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "besu"


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the console script's entry point in-process; return its exit code, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["consentledger", *args])
    with pytest.raises(SystemExit) as exited:
        run()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_committed_example_network_passes_check() -> None:
    """deploy/besu is a good 4-validator network with an RPC node: no problem, f = 1, quorum 3."""
    report = check_network(EXAMPLE)
    assert [str(p) for p in report.problems] == []
    assert (report.n, report.f, report.quorum) == (4, 1, 3)
    assert "rpc" in report.nodes


def test_committed_example_keys_are_marked_example_only() -> None:
    """The README and a file next to the keys say the keys are public and never for production."""
    assert "EXAMPLE ONLY: never use these keys in production" in (EXAMPLE / "README.md").read_text()
    assert "EXAMPLE ONLY - never use these keys in production" in (EXAMPLE / "nodes" / EXAMPLE_MARKER).read_text()


def test_check_command_prints_fault_tolerance_and_fails_with_one_line_per_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI prints n, f, quorum; on a broken copy it exits 2 with `file: problem` lines."""
    code, out, err = run_cli(monkeypatch, capsys, "network", "besu", "check", str(EXAMPLE))
    assert code == 0, err
    assert "n=4  f=1  quorum=3" in out

    broken = Path(shutil.copytree(EXAMPLE, tmp_path / "besu"))
    config = broken / "nodes" / "validator2" / "config.toml"
    config.write_text(config.read_text().replace("min-gas-price=0", "min-gas-price=10"))
    code, out, err = run_cli(monkeypatch, capsys, "network", "besu", "check", str(broken))
    assert code == 2
    assert f"{config}: min-gas-price must be 0 on every node, got 10" in err
    assert err.strip().splitlines()[-1] == f"error: {broken}: 1 problem(s) found"


def test_init_command_writes_a_network_that_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`init` from the command line, then `check` on what it wrote: exit 0; a bad member address: exit 2."""
    out_dir = tmp_path / "net"
    code, out, err = run_cli(
        monkeypatch, capsys, "network", "besu", "init", "--out", str(out_dir), "--validators", "5",
        "--chain-id", "777", "--deployer", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    )
    assert code == 0, err
    assert "validator5" in out and "chain id 777" in out
    code, out, err = run_cli(monkeypatch, capsys, "network", "besu", "check", str(out_dir))
    assert code == 0, err
    assert "n=5  f=1  quorum=4" in out
    code, out, err = run_cli(
        monkeypatch, capsys, "network", "besu", "init", "--out", str(tmp_path / "other"), "--member", "0x1234",
    )
    assert (code, err.strip()) == (2, "error: not an address: 0x1234")
