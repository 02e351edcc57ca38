"""The operator's way in: deploy and govern a real ganache chain through the CLI, as the README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consentledger.chain.accounts import dev_accounts
from consentledger.chain.node import LocalNode

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the console script like a user would; return its completed process."""
    env = {**os.environ, "CONSENTLEDGER_MANIFEST": str(cwd / "deployment.json")}
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command succeeded and return its stdout."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
    return result.stdout


@pytest.fixture()
def deployed(ganache: LocalNode, tmp_path: Path) -> Path:
    """A fresh deployment founded by dev accounts 0,1,2 with a 2-of-3 threshold."""
    admins = ",".join(a.address for a in dev_accounts(3))
    out = ok(run_cli(
        "deploy", "--rpc", ganache.rpc_url, "--admins", admins, "--threshold", "2",
        "--names", "ministry,health-admin,transport-admin", "--dev-account", "0", cwd=tmp_path,
    ))
    assert "manifest" in out
    return tmp_path


def test_deploy_writes_a_manifest_matching_the_chain(ganache: LocalNode, deployed: Path) -> None:
    """The manifest names chain id, both contracts, their ABI hashes and the deploy block."""
    manifest = json.loads((deployed / "deployment.json").read_text())
    assert manifest["chain_id"] == 1337
    assert set(manifest["contracts"]) == {"Consortium", "AccessLedger"}
    assert all(len(c["abi_hash"]) == 64 for c in manifest["contracts"].values())
    assert manifest["deploy_block"] >= 1
    members = ok(run_cli("org", "list", "--rpc", ganache.rpc_url, cwd=deployed))
    assert "ministry" in members and "threshold: 2 approvals" in members


def test_governance_round_admits_a_member_only_after_m_of_n(ganache: LocalNode, deployed: Path) -> None:
    """A proposal waits at 1 of 2 approvals, runs on the second, and the member becomes active."""
    agency = dev_accounts(6)[5].address
    rpc = ("--rpc", ganache.rpc_url)
    proposed = ok(run_cli(
        "org", "propose", "admit", "--account", agency, "--roles", "custodian,requester",
        "--name", "health bureau", "--gateway", "http://127.0.0.1:9001", "--x25519", "11" * 32,
        *rpc, "--dev-account", "0", cwd=deployed,
    ))
    assert "proposal 1" in proposed and "waiting for approvals" in proposed
    assert "health bureau" not in ok(run_cli("org", "list", *rpc, cwd=deployed))
    assert "executed" in ok(run_cli("org", "approve", "1", *rpc, "--dev-account", "1", cwd=deployed))
    listing = ok(run_cli("org", "list", *rpc, cwd=deployed))
    row = next(line for line in listing.splitlines() if agency in line)
    assert "health bureau" in row and "active" in row and "custodian,requester" in row

    ok(run_cli(
        "catalog", "propose-purpose", "--id", "1", "--name", "epidemic-control",
        *rpc, "--dev-account", "1", cwd=deployed,
    ))
    ok(run_cli("org", "approve", "2", *rpc, "--dev-account", "2", cwd=deployed))
    ok(run_cli(
        "catalog", "propose-category", "--id", "7", "--name", "contact-trace",
        "--fields", "name,phone,district", "--identifying", "name,phone", "--sensitivity", "one-time",
        "--retention", "30d", "--purposes", "1", *rpc, "--dev-account", "2", cwd=deployed,
    ))
    ok(run_cli("org", "approve", "3", *rpc, "--dev-account", "0", cwd=deployed))
    catalog = ok(run_cli("catalog", "list", *rpc, cwd=deployed))
    assert "epidemic-control" in catalog and "contact-trace" in catalog and "one-time" in catalog
    proposals = ok(run_cli("org", "proposals", *rpc, cwd=deployed))
    assert proposals.count("executed") == 3


def test_double_vote_is_refused_with_the_rule_name(ganache: LocalNode, deployed: Path) -> None:
    """Approving one's own proposal again exits non-zero with one line naming the rule."""
    rpc = ("--rpc", ganache.rpc_url)
    ok(run_cli("org", "propose", "set-threshold", "--threshold", "3", *rpc, "--dev-account", "0", cwd=deployed))
    result = run_cli("org", "approve", "1", *rpc, "--dev-account", "0", cwd=deployed)
    assert result.returncode == 5
    admin = dev_accounts(1)[0].address
    assert result.stderr.strip() == f"error: ConsortiumAlreadyApproved(proposal=1, admin={admin})"


def test_non_admin_cannot_propose(ganache: LocalNode, deployed: Path) -> None:
    """A non-member's proposal is refused by the contract, named in one line."""
    result = run_cli(
        "org", "propose", "suspend", "--account", dev_accounts(1)[0].address,
        "--rpc", ganache.rpc_url, "--dev-account", "9", cwd=deployed,
    )
    assert result.returncode == 5
    outsider = dev_accounts(10)[9].address
    assert result.stderr.strip() == f"error: ConsortiumMemberNotActive(account={outsider}, status=NONE)"


def test_unreachable_chain_is_one_readable_line(tmp_path: Path) -> None:
    """A dead RPC URL gives exit code 4 and a single line saying why, without urllib3's internals."""
    result = run_cli(
        "deploy", "--rpc", "http://127.0.0.1:9", "--admins", dev_accounts(1)[0].address,
        "--threshold", "1", "--dev-account", "0", cwd=tmp_path,
    )
    assert result.returncode == 4
    assert result.stderr.strip() == "error: chain unreachable at http://127.0.0.1:9: connection refused"


def test_missing_manifest_is_reported(ganache: LocalNode, tmp_path: Path) -> None:
    """Commands that need a deployment say how to make one when the manifest is missing."""
    result = run_cli("org", "list", "--rpc", ganache.rpc_url, cwd=tmp_path)
    assert result.returncode == 6
    assert "consentledger deploy" in result.stderr


def test_bad_threshold_is_refused_before_any_transaction(ganache: LocalNode, tmp_path: Path) -> None:
    """A threshold above the number of admins is a configuration error (exit 2)."""
    result = run_cli(
        "deploy", "--rpc", ganache.rpc_url, "--admins", dev_accounts(1)[0].address, "--threshold", "2",
        "--dev-account", "0", cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "threshold" in result.stderr
    assert not (tmp_path / "deployment.json").exists()
