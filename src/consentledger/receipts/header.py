"""Block headers: their RLP from `eth_getBlockByNumber`'s fields, and the few fields a receipt reads back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rlp
from eth_utils import keccak

# (JSON-RPC name, is an integer), in header order; the optional tail is present from its fork on.
_FIELDS: tuple[tuple[str, bool], ...] = (
    ("parentHash", False), ("sha3Uncles", False), ("miner", False), ("stateRoot", False),
    ("transactionsRoot", False), ("receiptsRoot", False), ("logsBloom", False), ("difficulty", True),
    ("number", True), ("gasLimit", True), ("gasUsed", True), ("timestamp", True), ("extraData", False),
    ("mixHash", False), ("nonce", False),
)
_OPTIONAL: tuple[tuple[str, bool], ...] = (
    ("baseFeePerGas", True),  # London
    ("withdrawalsRoot", False),  # Shanghai
    ("blobGasUsed", True), ("excessBlobGas", True), ("parentBeaconBlockRoot", False),  # Cancun
    ("requestsHash", False),  # Prague
)
STATE_ROOT, NUMBER, TIMESTAMP = 3, 8, 11


class HeaderError(Exception):
    """Raised when block fields or a header's RLP are malformed."""


@dataclass(frozen=True)
class Header:
    """What a receipt reads from a block header: its hash, number, time and state root."""

    hash: bytes
    number: int
    timestamp: int
    state_root: bytes


def encode_header(block: Mapping[str, Any]) -> bytes:
    """Return the RLP of a block's header from its JSON-RPC fields (0x-hex strings); keccak of it is the hash.

    The optional fields are taken in fork order while present; one missing ends the list.
    """
    items: list[bytes | int] = []
    for name, numeric in _FIELDS:
        if name not in block:
            raise HeaderError(f"block has no {name}")
        items.append(_field(block[name], numeric))
    for name, numeric in _OPTIONAL:
        if block.get(name) is None:
            break
        items.append(_field(block[name], numeric))
    return rlp.encode(items)


def decode_header(raw: bytes) -> Header:
    """Return the hash, number, timestamp and state root of a header given as RLP."""
    try:
        items = rlp.decode(raw)
    except rlp.DecodingError as exc:
        raise HeaderError(f"the header is not RLP ({exc})") from None
    if not isinstance(items, list) or len(items) < len(_FIELDS) or not all(isinstance(i, bytes) for i in items):
        raise HeaderError("the header is not a list of at least 15 byte strings")
    state_root = items[STATE_ROOT]
    if len(state_root) != 32:
        raise HeaderError("the header's state root is not 32 bytes")
    return Header(keccak(raw), int.from_bytes(items[NUMBER], "big"), int.from_bytes(items[TIMESTAMP], "big"),
                  state_root)


def _field(value: Any, numeric: bool) -> bytes | int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise HeaderError(f"block field {value!r} is not 0x-hex")
    if numeric:
        return int(value, 16)
    text = value[2:]
    return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
