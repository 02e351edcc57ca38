"""Slither over contracts/ (scripts/slither_check.py): no finding outside slither.triage.toml.

The second test shows the check can fail: a contract with known faults, in a temporary directory,
yields findings its triage does not accept, and the check names them and exits 1.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "slither_check.py"

# Two classic faults: ether sent before the balance is cleared (reentrancy-eth), and tx.origin used
# for authorisation (tx-origin); slither also reports the lesser findings the triage below accepts.
FAULTY_TILL = """// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

contract Till {
    address private _owner;
    mapping(address account => uint256) private _balances;

    constructor() {
        _owner = msg.sender;
    }

    function deposit() external payable {
        _balances[msg.sender] += msg.value;
    }

    function withdraw() external {
        (bool ok,) = msg.sender.call{value: _balances[msg.sender]}("");
        require(ok, "send failed");
        _balances[msg.sender] = 0;
    }

    function sweep(address payable to) external {
        require(tx.origin == _owner, "not the owner");
        to.transfer(address(this).balance);
    }
}
"""

TILL_TRIAGE = '''
[[accepted]]
check = "arbitrary-send-eth"
where = ["Till.sweep"]
why = "the test accepts it, to show an accepted finding passes"

[[accepted]]
check = "immutable-states"
where = ["Till._owner"]
why = "as above"

[[accepted]]
check = "low-level-calls"
where = ["Till.withdraw"]
why = "as above"

[[accepted]]
check = "missing-zero-check"
where = ["Till.sweep.to"]
why = "as above"

[[accepted]]
check = "assembly"
where = ["Till.removedLongAgo"]
why = "an accepted finding slither no longer reports"
'''


def _load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slither_check", CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


slither_check = _load_check()


@pytest.mark.process
def test_contracts_have_no_finding_outside_the_triage() -> None:
    """Every slither finding on contracts/ is accepted in slither.triage.toml, and every accepted one still occurs."""
    verdict = slither_check.judge(slither_check.run_slither(ROOT / "contracts"), slither_check.load_triage())
    assert verdict.ok, "\n".join(slither_check.render(verdict, slither_check.TRIAGE))
    assert verdict.findings, "slither reported nothing at all: is the triage still exercised?"


@pytest.mark.process
def test_new_finding_fails_the_check_and_is_named(tmp_path: Path) -> None:
    """A contract with a reentrancy and a tx.origin check fails the real check with both named as new."""
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "Till.sol").write_text(FAULTY_TILL, encoding="utf-8")
    triage = tmp_path / "triage.toml"
    triage.write_text(TILL_TRIAGE, encoding="utf-8")

    proc = subprocess.run(
        [sys.executable, str(CHECK), "--contracts", str(contracts), "--triage", str(triage)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    new = sorted(line.split(":")[0] for line in lines if line.startswith("NEW "))
    assert new == ["NEW reentrancy-eth (High) Till.withdraw", "NEW tx-origin (Medium) Till.sweep"]
    stale = [line for line in lines if line.startswith("STALE ")]
    assert stale == ["STALE assembly Till.removedLongAgo: no longer reported; remove it from triage.toml"]


def test_triage_entry_without_a_reason_is_refused(tmp_path: Path) -> None:
    """An accepted finding must say why."""
    triage = tmp_path / "triage.toml"
    triage.write_text('[[accepted]]\ncheck = "tx-origin"\nwhere = ["Till.sweep"]\nwhy = " "\n', encoding="utf-8")

    with pytest.raises(ValueError, match="tx-origin finding\\(s\\) say no why"):
        slither_check.load_triage(triage)
