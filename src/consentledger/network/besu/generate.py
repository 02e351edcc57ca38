"""`network besu init`: write a ready QBFT network directory (keys, genesis, node configs, allowlists, compose)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from consentledger.errors import NetworkConfigError
from consentledger.network.besu.configs import (
    BESU_IMAGE,
    SUBNET_PREFIX,
    Node,
    NodeRole,
    compose_file,
    node_config,
    permissions_config,
)
from consentledger.network.besu.extradata import MIN_VALIDATORS, fault_tolerance
from consentledger.network.besu.genesis import build_genesis, request_timeout
from consentledger.network.besu.keys import NodeKey
from consentledger.network.besu.readme import example_warning, operator_readme
from consentledger.types import Address

DEFAULT_CHAIN_ID = 2024
DEFAULT_BLOCK_PERIOD = 2
RPC_NODE = "rpc"
EXAMPLE_MARKER = "EXAMPLE-KEYS-DO-NOT-USE.txt"


@dataclass(frozen=True)
class NetworkSpec:
    """What `init` was asked for."""

    validators: int = MIN_VALIDATORS
    chain_id: int = DEFAULT_CHAIN_ID
    block_period: int = DEFAULT_BLOCK_PERIOD
    deployer: str | None = None
    members: tuple[str, ...] = ()
    example: bool = False


@dataclass(frozen=True)
class GeneratedNetwork:
    """What `init` wrote: the nodes, the funded and allowed accounts, and the fault tolerance."""

    directory: Path
    chain_id: int
    nodes: tuple[Node, ...]
    accounts: tuple[Address, ...]

    @property
    def validators(self) -> tuple[Node, ...]:
        """The validator nodes, in extraData order."""
        return tuple(n for n in self.nodes if n.role is NodeRole.VALIDATOR)


def generate_network(out: Path, spec: NetworkSpec) -> GeneratedNetwork:
    """Write a fresh network directory at `out` (must not exist or be empty); raise NetworkConfigError on bad input."""
    accounts = _accounts(spec)
    if spec.validators < MIN_VALIDATORS:
        raise NetworkConfigError(f"--validators {spec.validators}: QBFT needs at least {MIN_VALIDATORS} (f = 0 below)")
    if spec.validators > 200:
        raise NetworkConfigError(f"--validators {spec.validators}: at most 200 on one compose network")
    if spec.chain_id < 1:
        raise NetworkConfigError(f"--chain-id {spec.chain_id}: must be positive")
    if spec.block_period < 1:
        raise NetworkConfigError(f"--block-period {spec.block_period}: at least 1 second")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NetworkConfigError(f"{out}: exists and is not an empty directory (keys are never overwritten)")

    nodes = tuple(
        Node(f"validator{i}", NodeRole.VALIDATOR, NodeKey.generate(), f"{SUBNET_PREFIX}{10 + i}")
        for i in range(1, spec.validators + 1)
    ) + (Node(RPC_NODE, NodeRole.RPC, NodeKey.generate(), f"{SUBNET_PREFIX}{10 + spec.validators + 1}"),)
    validators = [n for n in nodes if n.role is NodeRole.VALIDATOR]

    out.mkdir(parents=True, exist_ok=True)
    genesis = build_genesis(
        chain_id=spec.chain_id, block_period=spec.block_period,
        validators=[n.key.address for n in validators], funded=accounts,
    )
    (out / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    (out / "permissions_config.toml").write_text(
        permissions_config(nodes=[n.enode for n in nodes], accounts=accounts)
    )
    for node in nodes:
        directory = out / "nodes" / node.name
        node.key.save(directory)
        bootnodes = [v.enode for v in validators if v.name != node.name]
        (directory / "config.toml").write_text(node_config(node, chain_id=spec.chain_id, bootnodes=bootnodes))
    (out / "docker-compose.yml").write_text(compose_file(nodes))
    f, quorum = fault_tolerance(len(validators))
    readme = operator_readme(
        nodes=nodes, chain_id=spec.chain_id, block_period=spec.block_period,
        request_timeout=request_timeout(spec.block_period), f=f, quorum=quorum, accounts=accounts,
        image=BESU_IMAGE, example=spec.example,
    )
    (out / "README.md").write_text(readme)
    if spec.example:
        (out / "nodes" / EXAMPLE_MARKER).write_text(example_warning())
    return GeneratedNetwork(out, spec.chain_id, nodes, accounts)


def _accounts(spec: NetworkSpec) -> tuple[Address, ...]:
    given: Sequence[str] = ([spec.deployer] if spec.deployer else []) + list(spec.members)
    bad = [a for a in given if not is_address(a)]
    if bad:
        raise NetworkConfigError(f"not an address: {', '.join(bad)}")
    if not given:
        raise NetworkConfigError(
            "no account could send a transaction: give --deployer ADDRESS (who runs `consentledger deploy`) "
            "and --member ADDRESS for each agency signer"
        )
    unique: dict[str, None] = {}
    for address in given:
        unique.setdefault(to_checksum_address(address), None)
    return tuple(Address(a) for a in unique)
