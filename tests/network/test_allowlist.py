"""The accounts allowlist follows governance: admitted members in, suspended kept, revoked and rotated-away out."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

from consentledger import governance as gov
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import LocalNode
from consentledger.cli.main import run
from consentledger.errors import NetworkConfigError
from consentledger.network.besu.allowlist import (
    allowlist_change,
    governed_accounts,
    read_permissions,
    rpc_requests,
)
from consentledger.network.besu.configs import permissions_config
from consentledger.types import Address, Member, MemberStatus, Role

ENODE = "enode://" + "ab" * 64 + "@172.16.239.11:30303"


def member(address: str, status: MemberStatus) -> Member:
    """A member record as the Consortium returns it."""
    return Member(Address(address), Role.CUSTODIAN, status, 0, bytes(32), "agency", "")


def test_active_and_suspended_members_are_allowed_revoked_are_not() -> None:
    """The deployer first, then ACTIVE and SUSPENDED members in admission order, then extras; REVOKED left out."""
    a, b, c, d = (x.address for x in dev_accounts(4))
    members = [member(b, MemberStatus.ACTIVE), member(c, MemberStatus.REVOKED), member(d, MemberStatus.SUSPENDED)]
    keep = "0x" + "11" * 20
    assert governed_accounts(members, deployer=a, keep=[keep]) == (a, b, d, "0x" + "11" * 20)
    assert governed_accounts(members) == (b, d)
    with pytest.raises(NetworkConfigError, match="--keep 'nope' is not an address"):
        governed_accounts(members, keep=["nope"])


def test_change_lists_what_to_add_and_remove_and_the_rpc_calls_that_do_it() -> None:
    """Against a current list: accounts to add, accounts to remove, and the perm_* requests (none if equal)."""
    a, b, c = (Address(x.address) for x in dev_accounts(3))
    change = allowlist_change((a, b), (b, c))
    assert (change.add, change.remove) == ((a,), (c,))
    assert rpc_requests(change) == [
        {"jsonrpc": "2.0", "id": 1, "method": "perm_addAccountsToAllowlist", "params": [[a]]},
        {"jsonrpc": "2.0", "id": 2, "method": "perm_removeAccountsFromAllowlist", "params": [[c]]},
    ]
    assert rpc_requests(allowlist_change((a,), (a,))) == []


def test_bad_permissions_file_is_refused_naming_it(tmp_path: Path) -> None:
    """A file that is not TOML, or lists a non-address, is refused with its path."""
    path = tmp_path / "permissions_config.toml"
    path.write_text("accounts-allowlist=[")
    with pytest.raises(NetworkConfigError, match=f"{path}: not valid TOML"):
        read_permissions(path)
    path.write_text('accounts-allowlist=["0x12"]\n')
    with pytest.raises(NetworkConfigError, match=f"{path}: accounts-allowlist holds non-addresses: 0x12"):
        read_permissions(path)


# ---------------------------------------------------------------------- on a real chain


def allowlist(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run `consentledger network besu allowlist ARGS` through the console entry point, in-process."""
    monkeypatch.setattr(sys, "argv", ["consentledger", "network", "besu", "allowlist", *args])
    with pytest.raises(SystemExit) as exited:
        run()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.mark.process
def test_allowlist_follows_admission_suspension_revocation_and_rotation(
    ganache: LocalNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On ganache: each governance step changes the printed list; --current gives the add and remove lists."""
    accounts = dev_accounts(20)
    deployer, admin = accounts[0], accounts[16]
    agency, other, successor = (a.address for a in accounts[17:20])
    ledger: Ledger = deploy(connect(ganache.rpc_url), deployer, [admin.address], 1, admin_names=["ministry"])
    manifest = tmp_path / "deployment.json"
    ledger.deployment.save(manifest)
    sender = ledger.sender(admin)
    common = ("--rpc", ganache.rpc_url, "--manifest", str(manifest))

    def listed() -> list[str]:
        code, out, err = allowlist(monkeypatch, capsys, *common, "--format", "json")
        assert code == 0, err
        return list(json.loads(out)["accounts"])

    try:
        assert listed() == [deployer.address, admin.address]
        ledger.propose(sender, gov.admit_member(agency, Role.CUSTODIAN, "health bureau"))
        ledger.propose(sender, gov.admit_member(other, Role.REQUESTER, "transport bureau"))
        assert listed() == [deployer.address, admin.address, agency, other]

        current = tmp_path / "permissions_config.toml"
        current.write_text(permissions_config(nodes=[ENODE], accounts=listed()))
        ledger.propose(sender, gov.suspend_member(agency))
        ledger.propose(sender, gov.revoke_member(other))
        ledger.propose(sender, gov.rotate_signer(agency, successor))
        assert listed() == [deployer.address, admin.address, successor]

        code, out, err = allowlist(monkeypatch, capsys, *common, "--current", str(current), "--format", "rpc")
        assert code == 0, err
        assert [json.loads(line) for line in out.splitlines()] == [
            {"jsonrpc": "2.0", "id": 1, "method": "perm_addAccountsToAllowlist", "params": [[successor]]},
            {"jsonrpc": "2.0", "id": 2, "method": "perm_removeAccountsFromAllowlist", "params": [[agency, other]]},
        ]
        code, out, err = allowlist(monkeypatch, capsys, *common, "--current", str(current), "--no-deployer")
        assert code == 0, err
        rewritten = tmp_path / "rewritten.toml"
        rewritten.write_text(out)
        kept = read_permissions(rewritten)
        assert kept.nodes == (ENODE,) and kept.accounts == (admin.address, successor)

        code, out, err = allowlist(monkeypatch, capsys, *common, "--no-deployer")
        assert code == 0, err
        assert tomllib.loads(out) == {"accounts-allowlist": [admin.address, successor]}

        code, _, err = allowlist(monkeypatch, capsys, *common, "--format", "rpc")
        assert code == 2
        assert err.strip() == "error: --format rpc needs --current permissions_config.toml (the list to change)"
    finally:
        ledger.close()
