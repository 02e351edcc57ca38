"""`network besu init` writes a directory `check` passes; each way of breaking it is caught with its message."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from consentledger.errors import NetworkConfigError
from consentledger.network.besu.check import check_network
from consentledger.network.besu.extradata import decode_extra_data, encode_genesis_extra_data
from consentledger.network.besu.generate import NetworkSpec, generate_network
from consentledger.network.besu.keys import NodeKey, load_key

DEPLOYER = "0xFE3B557E8Fb62b89F4916B721be55cEb828dBd73"
MEMBER_A = "0x627306090abaB3A6e1400e9345bC60c78a8BEf57"
MEMBER_B = "0xf17f52151EbEF6C7334FAD080c5704D77216b732"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One network generated for the module: 4 validators, an RPC node, a deployer and two members."""
    out = tmp_path_factory.mktemp("network") / "besu"
    generate_network(out, NetworkSpec(chain_id=4242, deployer=DEPLOYER, members=(MEMBER_A, MEMBER_B)))
    return out


@pytest.fixture
def network(generated: Path, tmp_path: Path) -> Path:
    """A copy of the generated network a test may break."""
    return Path(shutil.copytree(generated, tmp_path / "besu"))


def test_generated_network_passes_check_with_n_f_and_quorum(generated: Path) -> None:
    """init → check: no problem, 4 validators tolerating 1 fault with a quorum of 3, every node checked."""
    report = check_network(generated)
    assert report.problems == ()
    assert (report.n, report.f, report.quorum, report.chain_id) == (4, 1, 3, 4242)
    assert report.nodes == ("rpc", "validator1", "validator2", "validator3", "validator4")
    keys = [load_key(generated / "nodes" / f"validator{i}").address for i in range(1, 5)]
    assert report.validators == tuple(keys)


def test_generated_genesis_is_free_gas_qbft_with_shanghai(generated: Path) -> None:
    """The genesis has QBFT with a timeout twice the period, shanghai at 0, zero base fee and the accounts funded."""
    genesis = json.loads((generated / "genesis.json").read_text())
    config = genesis["config"]
    assert config["qbft"] == {"blockperiodseconds": 2, "epochlength": 30000, "requesttimeoutseconds": 4}
    assert (config["berlinBlock"], config["londonBlock"], config["shanghaiTime"], config["zeroBaseFee"]) == (
        0, 0, 0, True
    )
    assert set(genesis["alloc"]) == {DEPLOYER, MEMBER_A, MEMBER_B}
    assert decode_extra_data(genesis["extraData"]).round == 0


def test_init_refuses_fewer_than_four_validators_and_a_used_directory(generated: Path, tmp_path: Path) -> None:
    """Three validators tolerate no fault; keys are never written over an existing directory."""
    with pytest.raises(NetworkConfigError, match="QBFT needs at least 4"):
        generate_network(tmp_path / "three", NetworkSpec(validators=3, deployer=DEPLOYER))
    with pytest.raises(NetworkConfigError, match="is not an empty directory"):
        generate_network(generated, NetworkSpec(deployer=DEPLOYER))
    with pytest.raises(NetworkConfigError, match="give --deployer"):
        generate_network(tmp_path / "nobody", NetworkSpec())


# ---------------------------------------------------------------------- mutations


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _genesis(root: Path, change: Callable[[dict], None]) -> None:  # type: ignore[type-arg]
    path = root / "genesis.json"
    genesis = json.loads(path.read_text())
    change(genesis)
    path.write_text(json.dumps(genesis))


def _node(root: Path, name: str) -> Path:
    return root / "nodes" / name / "config.toml"


def _enode(root: Path, name: str, host: str) -> str:
    return load_key(root / "nodes" / name).enode(host, 30303)


def _drop_allowlist_line(root: Path, needle: str) -> None:
    path = root / "permissions_config.toml"
    lines = [line for line in path.read_text().splitlines() if needle not in line]
    path.write_text("\n".join(lines) + "\n")


def wrong_chain_id(root: Path) -> None:
    _genesis(root, lambda g: g["config"].update(chainId=4343))


def swapped_validator_keys(root: Path) -> None:
    one, two = root / "nodes/validator1/key", root / "nodes/validator2/key"
    first = one.read_text()
    one.write_text(two.read_text())
    two.write_text(first)


def replaced_validator_key(root: Path) -> None:
    NodeKey.generate().save(root / "nodes/validator3")


def min_gas_price_on_one_node(root: Path) -> None:
    _edit(_node(root, "validator2"), "min-gas-price=0", "min-gas-price=1000")


def min_gas_price_left_out(root: Path) -> None:
    _edit(_node(root, "rpc"), "min-gas-price=0\n", "")


def member_missing_from_accounts(root: Path) -> None:
    _drop_allowlist_line(root, MEMBER_B)


def node_missing_from_nodes_allowlist(root: Path) -> None:
    _drop_allowlist_line(root, _enode(root, "rpc", "172.16.239.15"))


def bootnode_missing_from_nodes_allowlist(root: Path) -> None:
    _drop_allowlist_line(root, _enode(root, "validator1", "172.16.239.11"))


def shanghai_missing(root: Path) -> None:
    _genesis(root, lambda g: g["config"].pop("shanghaiTime"))


def milestones_out_of_order(root: Path) -> None:
    _genesis(root, lambda g: g["config"].update(berlinBlock=10))


def base_fee_not_zero(root: Path) -> None:
    _genesis(root, lambda g: g["config"].update(zeroBaseFee=False))


def three_validators_in_extra_data(root: Path) -> None:
    validators = decode_extra_data(json.loads((root / "genesis.json").read_text())["extraData"]).validators
    _genesis(root, lambda g: g.update(extraData=encode_genesis_extra_data(validators[:3])))


def rpc_api_without_eth(root: Path) -> None:
    _edit(_node(root, "rpc"), '  "ETH",\n', "")


def rpc_api_with_perm(root: Path) -> None:
    _edit(_node(root, "rpc"), '  "TXPOOL",\n', '  "TXPOOL",\n  "PERM",\n')


def small_logs_range(root: Path) -> None:
    _edit(_node(root, "rpc"), "rpc-max-logs-range=5000", "rpc-max-logs-range=1000")


def default_sequenced_pool_share(root: Path) -> None:
    _edit(_node(root, "validator4"), "tx-pool-limit-by-account-percentage=0.15\n", "")


def network_id_differs_on_one_node(root: Path) -> None:
    _edit(_node(root, "validator1"), "network-id=4242", "network-id=1337")


def accounts_permissioning_off(root: Path) -> None:
    _edit(_node(root, "validator3"), "permissions-accounts-config-file-enabled=true",
          "permissions-accounts-config-file-enabled=false")


def image_of_avoided_release(root: Path) -> None:
    _edit(root / "docker-compose.yml", "hyperledger/besu:25.8.0", "hyperledger/besu:26.1.0")


def image_too_old(root: Path) -> None:
    _edit(root / "docker-compose.yml", "hyperledger/besu:25.8.0", "hyperledger/besu:24.5.1")


def image_not_pinned(root: Path) -> None:
    _edit(root / "docker-compose.yml", "hyperledger/besu:25.8.0", "hyperledger/besu:latest")


def genesis_not_json(root: Path) -> None:
    (root / "genesis.json").write_text("{")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (wrong_chain_id, [r"nodes/validator1/config.toml: network-id 4242 differs from genesis.json chainId 4343"]),
        (swapped_validator_keys, [r"nodes/validator1/key.pub: does not match the node's private key",
                                  r"permissions_config.toml: nodes-allowlist lacks validator validator1 \(enode://"]),
        (replaced_validator_key, [r"genesis.json: extraData validator 0x[0-9a-fA-F]{40} has no node under nodes/"]),
        (min_gas_price_on_one_node, [r"nodes/validator2/config.toml: min-gas-price must be 0 on every node, got 1000"]),
        (min_gas_price_left_out, [r"nodes/rpc/config.toml: min-gas-price must be 0 on every node, got None"]),
        (member_missing_from_accounts, [rf"permissions_config.toml: accounts-allowlist lacks {MEMBER_B} \(funded"]),
        (node_missing_from_nodes_allowlist, [r"permissions_config.toml: nodes-allowlist lacks RPC node rpc"]),
        (bootnode_missing_from_nodes_allowlist, [r"nodes/rpc/config.toml: bootnode enode://\w+@172.16.239.11:30303 "
                                                 r"is not on nodes-allowlist",
                                                 r"permissions_config.toml: nodes-allowlist lacks validator "
                                                 r"validator1"]),
        (shanghai_missing, [r"genesis.json: config.shanghaiTime must be 0"]),
        (milestones_out_of_order, [r"genesis.json: config.londonBlock 0 comes before config.berlinBlock 10"]),
        (base_fee_not_zero, [r"genesis.json: config.zeroBaseFee must be true"]),
        (three_validators_in_extra_data, [r"genesis.json: extraData names 3 validators: QBFT needs at least 4"]),
        (rpc_api_without_eth, [r"nodes/rpc/config.toml: rpc-http-api lacks ETH, which the gateway calls"]),
        (rpc_api_with_perm, [r"nodes/rpc/config.toml: rpc-http-api exposes PERM to the gateways"]),
        (small_logs_range, [r"nodes/rpc/config.toml: rpc-max-logs-range 1000 is below the gateway's"]),
        (default_sequenced_pool_share, [r"nodes/validator4/config.toml: the sequenced tx pool keeps 5 transactions"]),
        (network_id_differs_on_one_node, [r"nodes/validator1/config.toml: network-id 1337 differs"]),
        (accounts_permissioning_off, [r"nodes/validator3/config.toml: permissions-accounts-config-file-enabled must"]),
        (image_of_avoided_release, [r"docker-compose.yml: image hyperledger/besu:26.1.0: Besu 26.1.x is avoided"]),
        (image_too_old, [r"docker-compose.yml: image hyperledger/besu:24.5.1: QBFT with shanghaiTime needs"]),
        (image_not_pinned, [r"docker-compose.yml: image hyperledger/besu:latest is not a pinned Besu release"]),
        (genesis_not_json, [r"genesis.json: not valid JSON"]),
    ],
    ids=lambda v: v.__name__ if callable(v) else "",
)
def test_broken_network_is_caught_with_its_message(
    network: Path, mutate: Callable[[Path], None], expected: list[str]
) -> None:
    """Each mutation of a good directory yields a problem line naming the file and what is wrong."""
    mutate(network)
    lines = [str(p) for p in check_network(network).problems]
    for pattern in expected:
        assert any(re.match(pattern, line) for line in lines), f"{pattern!r} not in {lines}"
