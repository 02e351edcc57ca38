"""The QBFT genesis of a free-gas permissioned network: shanghai from block 0, zero base fee, funded accounts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address

from consentledger.network.besu.extradata import encode_genesis_extra_data

ISTANBUL_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
"""The BFT mixHash Besu requires ("Istanbul practical byzantine fault tolerance" digest)."""
GAS_LIMIT = 0x1FFFFFFFFFFFFF
"""Block gas limit: free gas, so blocks are bounded by time, not gas (Besu's free-gas example value)."""
CONTRACT_SIZE_LIMIT = 2_147_483_647
"""Largest contract code in bytes (Besu's maximum): the viaIR contracts never hit the 24 KiB mainnet limit here."""
FUNDING = 10**24
"""Wei given to the deployer and every member signer (1,000,000 ether): gas is free, so this only satisfies
tools that check a balance before sending; Besu's own pool asks gasLimit × 0 + value."""
EPOCH_LENGTH = 30_000
BLOCK_MILESTONES = (
    "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock", "constantinopleBlock",
    "petersburgBlock", "istanbulBlock", "muirGlacierBlock", "berlinBlock", "londonBlock",
    "arrowGlacierBlock", "grayGlacierBlock",
)
"""Block-numbered milestones in the order Besu requires them (a later one may not come before an earlier)."""
TIME_MILESTONES = ("shanghaiTime", "cancunTime", "pragueTime", "osakaTime")
"""Time-based milestones in the order Besu requires them."""
GENESIS_MILESTONES = ("berlinBlock", "londonBlock")
"""The block milestones the genesis names (Besu's specs are cumulative: london implies every earlier one)."""


def request_timeout(block_period: int) -> int:
    """Return QBFT's round timeout for a block period: twice the period, at least 4 s."""
    return max(2 * block_period, 4)


def build_genesis(
    *, chain_id: int, block_period: int, validators: Sequence[str], funded: Sequence[str], timestamp: int = 0
) -> dict[str, Any]:
    """Return the genesis.json content for `validators` (extraData order as given) funding `funded`."""
    config: dict[str, Any] = {"chainId": chain_id}
    config.update({milestone: 0 for milestone in GENESIS_MILESTONES})
    config.update({
        "shanghaiTime": 0,
        "zeroBaseFee": True,
        "contractSizeLimit": CONTRACT_SIZE_LIMIT,
        "qbft": {
            "blockperiodseconds": block_period,
            "epochlength": EPOCH_LENGTH,
            "requesttimeoutseconds": request_timeout(block_period),
        },
    })
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(timestamp),
        "gasLimit": hex(GAS_LIMIT),
        "difficulty": "0x1",
        "mixHash": ISTANBUL_MIX_HASH,
        "coinbase": "0x" + "00" * 20,
        "extraData": encode_genesis_extra_data(validators),
        "alloc": {to_checksum_address(a): {"balance": hex(FUNDING)} for a in funded},
    }
