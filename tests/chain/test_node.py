"""Local chain processes: ganache and anvil start on free ports, fund dev accounts, stop cleanly."""

from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path

import pytest
from web3 import Web3

from consentledger.chain import node as node_mod
from consentledger.chain.accounts import DEV_MNEMONIC, dev_accounts
from consentledger.chain.node import ChainKind, start_node, wait_for_rpc
from consentledger.errors import ChainUnavailableError, ConfigurationError, NodeStartError, PortInUseError
from consentledger.ports import held_port, hold_port

DEV_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def live_group_members(group: int) -> list[str]:
    """Return `ps` lines of the non-zombie processes in process group `group`."""
    listing = subprocess.run(
        ["ps", "-e", "-ww", "-o", "pid=,pgid=,stat=,args="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    members = []
    for line in listing.splitlines():
        pid, pgid, state, *_ = line.split(maxsplit=3)
        if int(pgid) == group and not state.startswith("Z"):
            members.append(line)
    return members


def port_is_closed(port: int) -> bool:
    """Return whether connecting to 127.0.0.1:`port` is refused."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def fake_node_modules(root: Path, kind: ChainKind, script: str) -> Path:
    """Return a node_modules dir whose `.bin/<kind>` is the given shell script."""
    binary = root / "node_modules" / ".bin" / kind.value
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary.parent.parent


def test_dev_accounts_are_anvils_default_accounts() -> None:
    """Dev account 0 is the well-known anvil/hardhat account derived from the junk mnemonic."""
    accounts = dev_accounts(3)
    assert DEV_MNEMONIC.endswith("junk")
    assert accounts[0].address == DEV_ACCOUNT_0
    assert "0x" + accounts[0].key.hex() == DEV_KEY_0
    assert len({a.address for a in accounts}) == 3
    assert dev_accounts(3)[1] is accounts[1]  # cached, not derived again


@pytest.mark.process
@pytest.mark.parametrize("kind", list(ChainKind))
def test_node_answers_chain_id_and_funds_dev_accounts_then_stops_without_leftovers(
    kind: ChainKind,
) -> None:
    """A started chain answers chain id 1337, funds dev account 0 generously, and stop() ends it."""
    node = start_node(kind, accounts=3)
    try:
        assert node.kind is kind
        assert node.rpc_url == f"http://127.0.0.1:{node.port}"
        assert wait_for_rpc(node.rpc_url, timeout=5) == 1337
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        assert w3.eth.accounts[0] == DEV_ACCOUNT_0
        assert w3.eth.get_balance(Web3.to_checksum_address(DEV_ACCOUNT_0)) >= Web3.to_wei(
            999_999, "ether"
        )
        assert live_group_members(node.process.pid)
    finally:
        node.stop()
    assert node.process.returncode is not None
    assert live_group_members(node.process.pid) == []
    assert port_is_closed(node.port)
    node.stop()  # idempotent


@pytest.mark.process
def test_second_node_starts_alongside_on_another_port() -> None:
    """Two chains (one of each kind) run side by side on different free ports."""
    with start_node(ChainKind.ANVIL) as first, start_node(ChainKind.GANACHE) as second:
        assert first.port != second.port
        assert wait_for_rpc(first.rpc_url, timeout=5) == 1337
        assert wait_for_rpc(second.rpc_url, timeout=5) == 1337
    assert port_is_closed(first.port) and port_is_closed(second.port)


@pytest.mark.process
def test_chain_id_and_log_path_are_honoured(tmp_path: Path) -> None:
    """A custom chain id is served and the chain's output lands in the given log file."""
    log = tmp_path / "logs" / "anvil.log"
    with start_node(ChainKind.ANVIL, chain_id=4242, log_path=log, block_time=1) as node:
        assert wait_for_rpc(node.rpc_url, timeout=5) == 4242
    assert "Listening on" in log.read_text()


@pytest.mark.process
def test_free_gas_anvil_asks_no_gas_price_and_charges_nothing() -> None:
    """With free gas the gas price and base fee are 0 (no suggested tip), and a legacy transfer at gas price 0 is
    mined on the interval, its sender paying the value only."""
    with start_node(ChainKind.ANVIL, accounts=2, block_time=1, free_gas=True) as node:
        assert node.free_gas
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        assert w3.eth.gas_price == 0
        assert w3.eth.get_block("latest")["baseFeePerGas"] == 0
        sender, receiver = dev_accounts(2)
        before = w3.eth.get_balance(sender.address)
        signed = sender.sign_transaction({"to": receiver.address, "value": 1, "gas": 21_000, "gasPrice": 0,
                                          "nonce": 0, "chainId": 1337})
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), 10)
        assert (receipt["status"], receipt["type"], receipt["effectiveGasPrice"]) == (1, 0, 0)
        assert w3.eth.get_balance(sender.address) == before - 1


def test_free_gas_on_ganache_is_a_configuration_error() -> None:
    """ganache cannot run with a zero base fee: asking for free gas fails before anything starts."""
    with pytest.raises(ConfigurationError, match="free gas needs anvil"):
        start_node(ChainKind.GANACHE, free_gas=True)


@pytest.mark.process
def test_explicit_port_in_use_raises_port_in_use_error() -> None:
    """Asking for a port something already listens on fails at once with a clear error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} .* already in use"):
            start_node(ChainKind.ANVIL, port=port)


@pytest.mark.process
def test_port_grabbed_between_pick_and_start_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the picked free port is taken before the chain binds it, another port is tried."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])
        real_free_port = node_mod.free_port
        monkeypatch.setattr(node_mod, "free_port", lambda: next(picks, None) or real_free_port())
        with start_node(ChainKind.ANVIL) as node:
            assert node.port != busy
            assert wait_for_rpc(node.rpc_url, timeout=5) == 1337


@pytest.mark.process
def test_a_port_another_chain_took_first_is_retried_though_that_chain_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """If another chain (same chain id) serves the picked port, its answer is not taken for ours: another port is
    tried, and the node returned is the running process that listens on its own port."""
    with start_node(ChainKind.ANVIL) as stranger:
        picks = iter([stranger.port])
        real_free_port = node_mod.free_port
        monkeypatch.setattr(node_mod, "free_port", lambda: next(picks, None) or real_free_port())
        with start_node(ChainKind.ANVIL) as node:
            assert node.port != stranger.port
            assert node.running() and node_mod._listens_itself(node)
            assert wait_for_rpc(node.rpc_url, timeout=5) == 1337
        assert stranger.running()


@pytest.mark.parametrize("kind", list(ChainKind))
def test_missing_binary_raises_node_start_error(
    kind: ChainKind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without node_modules the error says to run `make bootstrap`."""
    monkeypatch.setattr(node_mod.paths, "node_modules", lambda: tmp_path / "node_modules")
    with pytest.raises(NodeStartError, match="make bootstrap"):
        start_node(kind)


def test_process_that_exits_raises_node_start_error_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain process that dies during startup fails with its exit code and last output lines."""
    modules = fake_node_modules(tmp_path, ChainKind.GANACHE, "echo 'boom: bad flag' >&2; exit 3")
    monkeypatch.setattr(node_mod.paths, "node_modules", lambda: modules)
    with pytest.raises(NodeStartError, match=r"exited with code 3(.|\n)*boom: bad flag"):
        start_node(ChainKind.GANACHE, startup_timeout=10)


def test_process_that_never_answers_times_out_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain process that never answers fails after the timeout and is not left running."""
    modules = fake_node_modules(tmp_path, ChainKind.GANACHE, "echo starting; exec sleep 60")
    monkeypatch.setattr(node_mod.paths, "node_modules", lambda: modules)
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        process = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        started.append(process)
        return process

    monkeypatch.setattr(node_mod.subprocess, "Popen", recording_popen)
    with pytest.raises(NodeStartError, match=r"did not answer .* within 1s(.|\n)*starting"):
        start_node(ChainKind.GANACHE, startup_timeout=1)
    assert started and started[0].returncode is not None
    assert live_group_members(started[0].pid) == []


def test_wait_for_rpc_raises_chain_unavailable_when_nothing_listens() -> None:
    """Polling a port nobody listens on gives up after the timeout with ChainUnavailableError."""
    with hold_port() as closed, pytest.raises(ChainUnavailableError, match="did not answer eth_chainId"):
        wait_for_rpc(f"http://127.0.0.1:{held_port(closed)}", timeout=0.3)
