"""The genesis half of `network besu check`: QBFT, milestones, free gas, the validator set and the funded accounts."""

from __future__ import annotations

from typing import Any

from eth_utils import is_address, to_checksum_address

from consentledger.network.besu.extradata import MIN_VALIDATORS, ExtraDataError, decode_extra_data
from consentledger.network.besu.findings import Findings, hex_int, lower_keys, positive
from consentledger.network.besu.genesis import BLOCK_MILESTONES, ISTANBUL_MIX_HASH, TIME_MILESTONES
from consentledger.types import Address

MIN_GAS_LIMIT = 30_000_000
"""A block must hold the gateway's largest batch (256 accesses); mainnet's limit is the floor."""
MIN_CONTRACT_SIZE = 24_576


def check_genesis(c: Findings, genesis: dict[str, Any], config: dict[str, Any]) -> int | None:
    """Return the genesis chain id (None if unusable), recording each problem of its QBFT, milestones and gas."""
    g = "genesis.json"
    chain_id = config.get("chainid")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id < 1:
        c.fail(g, f"config.chainId must be a positive integer, got {chain_id!r}")
        chain_id = None
    qbft = lower_keys(config.get("qbft"))
    if not qbft:
        c.fail(g, "config.qbft is missing: not a QBFT genesis")
    else:
        period: Any = qbft.get("blockperiodseconds")
        timeout: Any = qbft.get("requesttimeoutseconds")
        if not positive(period):
            c.fail(g, f"config.qbft.blockperiodseconds must be a positive integer, got {period!r}")
        if not positive(qbft.get("epochlength")):
            c.fail(g, f"config.qbft.epochlength must be a positive integer, got {qbft.get('epochlength')!r}")
        if not positive(timeout):
            c.fail(g, f"config.qbft.requesttimeoutseconds must be a positive integer, got {timeout!r}")
        elif positive(period) and timeout <= period:
            c.fail(g, f"config.qbft.requesttimeoutseconds {timeout} must exceed blockperiodseconds {period} (about 2x)")
    _check_milestones(c, config)
    if config.get("zerobasefee") is not True:
        c.fail(g, "config.zeroBaseFee must be true: a free-gas network has no base fee")
    size = config.get("contractsizelimit")
    if size is not None and (not positive(size) or size < MIN_CONTRACT_SIZE):
        c.fail(g, f"config.contractSizeLimit {size!r} is below {MIN_CONTRACT_SIZE} bytes")
    if hex_int(genesis.get("difficulty")) != 1:
        c.fail(g, f"difficulty must be 0x1 for QBFT, got {genesis.get('difficulty')!r}")
    if str(genesis.get("mixHash", genesis.get("mixhash", ""))).lower() != ISTANBUL_MIX_HASH:
        c.fail(g, f"mixHash must be the BFT mix hash {ISTANBUL_MIX_HASH}")
    gas_limit = hex_int(genesis.get("gasLimit"))
    if gas_limit is None or gas_limit < MIN_GAS_LIMIT:
        c.fail(g, f"gasLimit {genesis.get('gasLimit')!r} is below {MIN_GAS_LIMIT} (the gateway's batches need room)")
    return chain_id


def _check_milestones(c: Findings, config: dict[str, Any]) -> None:
    g = "genesis.json"
    for names in (BLOCK_MILESTONES, TIME_MILESTONES):
        previous: tuple[str, int] | None = None
        for name in names:
            value = config.get(name.lower())
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                c.fail(g, f"config.{name} must be a non-negative integer, got {value!r}")
                continue
            if previous is not None and value < previous[1]:
                c.fail(g, f"config.{name} {value} comes before config.{previous[0]} {previous[1]}: "
                          "milestones out of order")
            previous = (name, value)
    if config.get("londonblock") != 0:
        c.fail(g, "config.londonBlock must be 0: zeroBaseFee needs London from genesis")
    if config.get("shanghaitime") != 0:
        c.fail(g, "config.shanghaiTime must be 0: the contracts are compiled for shanghai (PUSH0)")


def genesis_validators(c: Findings, genesis: dict[str, Any]) -> tuple[Address, ...]:
    """Return the validators `extraData` names (() if it does not decode), recording each problem."""
    g = "genesis.json"
    raw = genesis.get("extraData", genesis.get("extradata"))
    if not isinstance(raw, str):
        c.fail(g, "extraData is missing")
        return ()
    try:
        extra = decode_extra_data(raw)
    except ExtraDataError as exc:
        c.fail(g, f"extraData is not QBFT extra data: {exc}")
        return ()
    if extra.vote is not None or extra.round != 0 or extra.seals:
        c.fail(g, "extraData of a genesis block must carry no vote, round 0 and no seals")
    if len(set(extra.validators)) != len(extra.validators):
        c.fail(g, "extraData names a validator twice")
    if len(extra.validators) < MIN_VALIDATORS:
        c.fail(g, f"extraData names {len(extra.validators)} validators: QBFT needs at least {MIN_VALIDATORS} "
                  "to tolerate one faulty")
    return extra.validators


def funded_accounts(c: Findings, genesis: dict[str, Any]) -> list[Address]:
    """Return the accounts `alloc` funds, recording keys that are no address."""
    alloc = genesis.get("alloc", {})
    if not isinstance(alloc, dict):
        c.fail("genesis.json", "alloc must be an object")
        return []
    accounts = []
    for key in alloc:
        address = key if key.startswith("0x") else "0x" + key
        if not is_address(address):
            c.fail("genesis.json", f"alloc key {key!r} is not an address")
            continue
        accounts.append(Address(to_checksum_address(address)))
    return accounts
