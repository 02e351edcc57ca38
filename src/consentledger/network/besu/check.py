"""`network besu check`: verify a network directory offline; every problem is one line naming its file.

A sigstore-style verifier: it takes the directory's files and returns a report (the validator set,
n, f, quorum and a list of problems) without starting anything or touching the network.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from consentledger.errors import NetworkConfigError
from consentledger.network.besu.configs import GENESIS_PATH, NODE_DIR, PERMISSIONS_PATH
from consentledger.network.besu.extradata import fault_tolerance
from consentledger.network.besu.findings import Findings, Problem, lower_keys, positive, string_list
from consentledger.network.besu.genesis_check import check_genesis, funded_accounts, genesis_validators
from consentledger.network.besu.keys import load_key, load_public_key, parse_enode
from consentledger.settings import LOGS_BLOCK_RANGE
from consentledger.types import Address

GATEWAY_APIS = frozenset({"ETH", "NET", "WEB3"})
"""What the gateway and its tools call: eth_* for every read and write, net_version and web3_clientVersion."""
OPERATOR_ONLY_APIS = frozenset({"ADMIN", "PERM", "DEBUG", "MINER"})
"""APIs that change the node or its allowlists: never on the RPC node the gateways (other agencies) reach."""
MIN_PENDING_PER_SENDER = 100
"""Transactions of one sender a node's pool must keep: room for several gateway replicas sharing one signer
(each bounded by `max_pending_per_signer`); Besu's sequenced pool keeps about 5 unless told otherwise."""
MIN_BESU = (24, 5, 2)
"""QBFT with time-based milestones (shanghaiTime) needs Besu 24.5.2 or later."""
AVOIDED_BESU = (26, 1)
"""Besu 26.1.x is avoided (see the issue that introduced these configs)."""


@dataclass(frozen=True)
class NetworkReport:
    """The verdict on a network directory: its validators, fault tolerance and problems (none: it is good)."""

    directory: Path
    chain_id: int | None
    validators: tuple[Address, ...]
    nodes: tuple[str, ...]
    image: str | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    @property
    def n(self) -> int:
        """How many validators the genesis names."""
        return len(self.validators)

    @property
    def f(self) -> int:
        """How many faulty validators the network tolerates."""
        return fault_tolerance(self.n)[0] if self.n else 0

    @property
    def quorum(self) -> int:
        """How many validators must sign a block."""
        return fault_tolerance(self.n)[1] if self.n else 0


def check_network(directory: Path) -> NetworkReport:
    """Return the report on the network directory `directory` (raise NetworkConfigError only if it is no directory)."""
    if not directory.is_dir():
        raise NetworkConfigError(f"{directory}: not a directory")
    c = Findings(directory)
    genesis = c.json("genesis.json")
    config = lower_keys(genesis.get("config")) if isinstance(genesis, dict) else {}
    chain_id = check_genesis(c, genesis, config) if isinstance(genesis, dict) else None
    validators = genesis_validators(c, genesis) if isinstance(genesis, dict) else ()
    funded = funded_accounts(c, genesis) if isinstance(genesis, dict) else []

    permissions = c.toml("permissions_config.toml") or {}
    allowed_nodes = string_list(c, "permissions_config.toml", permissions, "nodes-allowlist")
    allowed_accounts = {
        to_checksum_address(a) for a in string_list(c, "permissions_config.toml", permissions, "accounts-allowlist")
        if is_address(a)
    }
    allowed_enodes = {_enode_key(e) for e in allowed_nodes if parse_enode(e)}
    for entry in allowed_nodes:
        if parse_enode(entry) is None:
            c.fail("permissions_config.toml", f"nodes-allowlist entry {entry!r} is not an enode URL")

    nodes = _check_nodes(c, chain_id, set(validators), allowed_enodes)
    for validator in validators:
        if validator not in nodes.values():
            c.fail("genesis.json", f"extraData validator {validator} has no node under nodes/ whose key derives to it")
    for account in funded:
        if account not in allowed_accounts:
            c.fail("permissions_config.toml", f"accounts-allowlist lacks {account} (funded in genesis.json)")
    image = _check_compose(c, list(nodes))
    return NetworkReport(directory, chain_id, validators, tuple(nodes), image, tuple(c.problems))


# ---------------------------------------------------------------------- nodes


def _check_nodes(
    c: Findings, chain_id: int | None, validators: set[Address], allowed_enodes: set[tuple[bytes, str, int]]
) -> dict[str, Address]:
    """Check every node directory; return node name -> address for the nodes whose key loads."""
    nodes_dir = c.root / "nodes"
    names = sorted(p.name for p in nodes_dir.iterdir() if p.is_dir()) if nodes_dir.is_dir() else []
    if not names:
        c.fail("nodes/", "no node directories")
    found: dict[str, Address] = {}
    rpc_nodes = 0
    for name in names:
        where = f"nodes/{name}"
        try:
            key = load_key(nodes_dir / name)
        except NetworkConfigError as exc:
            c.fail(f"{where}/key", str(exc).split(": ", 1)[-1])
            continue
        found[name] = key.address
        try:
            if load_public_key(nodes_dir / name) != key.public_key:
                c.fail(f"{where}/key.pub", "does not match the node's private key")
        except NetworkConfigError as exc:
            c.fail(f"{where}/key.pub", str(exc).split(": ", 1)[-1])
        config = c.toml(f"{where}/config.toml")
        if config is None:
            continue
        _check_node_config(c, f"{where}/config.toml", config, chain_id, allowed_enodes)
        role = "validator" if key.address in validators else "RPC node"
        if role == "RPC node":
            rpc_nodes += 1
            _check_rpc_node(c, f"{where}/config.toml", config)
        host, port = config.get("p2p-host"), config.get("p2p-port")
        if isinstance(host, str) and isinstance(port, int) and positive(port):
            enode = key.enode(host, port)
            if _enode_key(enode) not in allowed_enodes:
                c.fail("permissions_config.toml", f"nodes-allowlist lacks {role} {name} ({enode})")
    if names and rpc_nodes == 0:
        c.fail("nodes/", "no RPC node: every node is a validator, so the gateways have no node of their own")
    return found


def _check_node_config(
    c: Findings, file: str, config: dict[str, Any], chain_id: int | None, allowed: set[tuple[bytes, str, int]]
) -> None:
    network_id = config.get("network-id")
    if network_id is not None and chain_id is not None and network_id != chain_id:
        c.fail(file, f"network-id {network_id} differs from genesis.json chainId {chain_id}")
    if config.get("genesis-file") != GENESIS_PATH:
        c.fail(file, f"genesis-file must be {GENESIS_PATH} (the directory's genesis.json), "
                     f"got {config.get('genesis-file')!r}")
    if config.get("node-private-key-file") != f"{NODE_DIR}/key":
        c.fail(file, f"node-private-key-file must be {NODE_DIR}/key (this directory's key); "
                     "otherwise Besu makes a new one")
    price = config.get("min-gas-price")
    if price != 0:
        c.fail(file, f"min-gas-price must be 0 on every node, got {price!r} (Besu's default is 1000 wei): "
                     "the node would silently drop the gateways' zero-price transactions")
    for kind in ("nodes", "accounts"):
        if config.get(f"permissions-{kind}-config-file-enabled") is not True:
            c.fail(file, f"permissions-{kind}-config-file-enabled must be true")
        if config.get(f"permissions-{kind}-config-file") != PERMISSIONS_PATH:
            c.fail(file, f"permissions-{kind}-config-file must be {PERMISSIONS_PATH} "
                         "(the shared permissions_config.toml)")
    _check_pool(c, file, config)
    bootnodes = config.get("bootnodes", [])
    if not isinstance(bootnodes, list) or not bootnodes:
        c.fail(file, "bootnodes must list at least one validator's enode URL")
        bootnodes = []
    for bootnode in bootnodes:
        parsed = parse_enode(bootnode) if isinstance(bootnode, str) else None
        if parsed is None:
            c.fail(file, f"bootnode {bootnode!r} is not an enode URL")
        elif _enode_key_of(parsed) not in allowed:
            c.fail(file, f"bootnode {bootnode} is not on nodes-allowlist in permissions_config.toml")
    if not isinstance(config.get("p2p-host"), str) or not positive(config.get("p2p-port")):
        c.fail(file, "p2p-host and p2p-port must be set (they make the node's enode URL on the allowlist)")


def _check_pool(c: Findings, file: str, config: dict[str, Any]) -> None:
    pool = str(config.get("tx-pool", "LAYERED")).upper()
    try:
        if pool == "LAYERED":
            per_sender = int(config.get("tx-pool-max-future-by-sender", 200))
        else:
            size = int(config.get("tx-pool-max-size", 4096))
            per_sender = math.ceil(size * float(config.get("tx-pool-limit-by-account-percentage", 0.001)))
    except (TypeError, ValueError):
        c.fail(file, "tx-pool-max-size, tx-pool-limit-by-account-percentage and tx-pool-max-future-by-sender "
                     "must be numbers")
        return
    if per_sender < MIN_PENDING_PER_SENDER:
        c.fail(file, f"the {pool.lower()} tx pool keeps {per_sender} transactions per sender, fewer than "
                     f"{MIN_PENDING_PER_SENDER}: raise tx-pool-limit-by-account-percentage (ENTERPRISE profile: 0.15)")


def _check_rpc_node(c: Findings, file: str, config: dict[str, Any]) -> None:
    if config.get("rpc-http-enabled") is not True:
        c.fail(file, "rpc-http-enabled must be true on the RPC node")
    apis = config.get("rpc-http-api", ["ETH", "NET", "WEB3"])
    apis = {str(a).upper() for a in apis} if isinstance(apis, list) else set()
    missing = sorted(GATEWAY_APIS - apis)
    if missing:
        c.fail(file, f"rpc-http-api lacks {', '.join(missing)}, which the gateway calls")
    exposed = sorted(OPERATOR_ONLY_APIS & apis)
    if exposed:
        c.fail(file, f"rpc-http-api exposes {', '.join(exposed)} to the gateways: keep those on an operator-only node")
    logs = config.get("rpc-max-logs-range", LOGS_BLOCK_RANGE)
    if not isinstance(logs, int) or (logs != 0 and logs < LOGS_BLOCK_RANGE):
        c.fail(file, f"rpc-max-logs-range {logs!r} is below the gateway's logs_block_range default {LOGS_BLOCK_RANGE}")


# ---------------------------------------------------------------------- compose


def _check_compose(c: Findings, nodes: list[str]) -> str | None:
    f = "docker-compose.yml"
    try:
        text = (c.root / f).read_text()
    except FileNotFoundError:
        c.fail(f, "missing")
        return None
    images = set(re.findall(r"^\s*image:\s*[\"']?([^\s\"']+)", text, re.MULTILINE))
    if len(images) != 1:
        c.fail(f, f"every node must run one pinned Besu image, found {sorted(images) or 'none'}")
        return None
    image = images.pop()
    repository, _, tag = image.rpartition(":")
    version = tuple(int(p) for p in tag.split(".")) if re.fullmatch(r"\d+\.\d+\.\d+", tag) else None
    if not repository.endswith("besu") or version is None:
        c.fail(f, f"image {image} is not a pinned Besu release (NAME/besu:YY.M.P)")
    elif version < MIN_BESU:
        c.fail(f, f"image {image}: QBFT with shanghaiTime needs Besu {'.'.join(map(str, MIN_BESU))} or later")
    elif version[:2] == AVOIDED_BESU:
        c.fail(f, f"image {image}: Besu {AVOIDED_BESU[0]}.{AVOIDED_BESU[1]}.x is avoided; pin another release")
    services = set(re.findall(r"^  ([A-Za-z0-9_.-]+):\s*$", text, re.MULTILINE))
    for name in nodes:
        if name not in services:
            c.fail(f, f"no service for node {name}")
    return image


# ---------------------------------------------------------------------- helpers


def _enode_key(url: str) -> tuple[bytes, str, int]:
    parsed = parse_enode(url)
    assert parsed is not None
    return _enode_key_of(parsed)


def _enode_key_of(parsed: tuple[bytes, str, int]) -> tuple[bytes, str, int]:
    return parsed[0], parsed[1].lower(), parsed[2]
