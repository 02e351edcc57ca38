"""QBFT genesis `extraData`: RLP([32-byte vanity, [validators], vote, round, [seals]]), as Besu's QbftExtraDataCodec.

A genesis block carries no vote (an empty list), round 0 written as an RLP scalar (the empty string,
0x80: Besu reads it with `readIntScalar`, which refuses leading zeros, so a 4-byte 0x00000000 round
is not accepted) and no commit seals (an empty list).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from eth_utils import to_canonical_address, to_checksum_address

from consentledger.types import Address

VANITY_LENGTH = 32
MIN_VALIDATORS = 4
"""QBFT tolerates f = ⌊(n−1)/3⌋ faulty validators: fewer than 4 tolerate none."""


class ExtraDataError(ValueError):
    """Raised when bytes are not a QBFT genesis extraData; the message says which part is wrong."""


@dataclass(frozen=True)
class QbftExtraData:
    """The decoded parts of a QBFT block header's extraData."""

    vanity: bytes
    validators: tuple[Address, ...]
    vote: tuple[Address, bool] | None
    round: int
    seals: tuple[bytes, ...]


def encode_genesis_extra_data(validators: Sequence[str], vanity: bytes = bytes(VANITY_LENGTH)) -> str:
    """Return the 0x-hex genesis extraData naming `validators` (in the order given), no vote, round 0, no seals."""
    if len(vanity) != VANITY_LENGTH:
        raise ValueError(f"the vanity is {VANITY_LENGTH} bytes, got {len(vanity)}")
    encoded = rlp.encode([vanity, [to_canonical_address(v) for v in validators], [], b"", []])
    return "0x" + encoded.hex()


def decode_extra_data(hex_data: str) -> QbftExtraData:
    """Return the parts of a QBFT extraData (0x-hex); raise ExtraDataError naming what is malformed."""
    try:
        data = bytes.fromhex(hex_data[2:] if hex_data.startswith("0x") else hex_data)
    except ValueError:
        raise ExtraDataError("not hex") from None
    try:
        items = rlp.decode(data)
    except rlp.exceptions.DecodingError as exc:
        raise ExtraDataError(f"not RLP: {exc}") from None
    if not isinstance(items, list) or len(items) != 5:
        count = len(items) if isinstance(items, list) else "a string, not a list"
        raise ExtraDataError(f"expected an RLP list of 5 items (vanity, validators, vote, round, seals), got {count}")
    vanity, validators, vote, round_bytes, seals = items
    if not isinstance(vanity, bytes) or len(vanity) != VANITY_LENGTH:
        raise ExtraDataError(f"the vanity must be {VANITY_LENGTH} bytes")
    if not isinstance(validators, list) or any(not isinstance(v, bytes) or len(v) != 20 for v in validators):
        raise ExtraDataError("the validators must be a list of 20-byte addresses")
    if not isinstance(round_bytes, bytes) or len(round_bytes) > 4 or round_bytes[:1] == b"\x00":
        raise ExtraDataError("the round must be an RLP scalar of at most 4 bytes without leading zeros")
    if not isinstance(seals, list) or any(not isinstance(s, bytes) for s in seals):
        raise ExtraDataError("the seals must be a list of signatures")
    return QbftExtraData(
        vanity=vanity,
        validators=tuple(Address(to_checksum_address(v)) for v in validators),
        vote=_vote(vote),
        round=int.from_bytes(round_bytes, "big"),
        seals=tuple(seals),
    )


def _vote(vote: object) -> tuple[Address, bool] | None:
    if vote == []:
        return None
    if not isinstance(vote, list) or len(vote) != 2 or not isinstance(vote[0], bytes) or len(vote[0]) != 20:
        raise ExtraDataError("the vote must be an empty list or [address, add/drop]")
    if vote[1] not in (b"", b"\xff"):  # Besu: ADD is the byte 0xFF, DROP the empty string
        raise ExtraDataError("the vote's kind must be 0xff (add) or empty (drop)")
    return Address(to_checksum_address(vote[0])), vote[1] == b"\xff"


def fault_tolerance(validators: int) -> tuple[int, int]:
    """Return (f, quorum) for `validators` QBFT validators: f = ⌊(n−1)/3⌋ faulty tolerated, quorum = ⌈2n/3⌉."""
    if validators < 1:
        raise ValueError("a QBFT network has at least one validator")
    return (validators - 1) // 3, -(-2 * validators // 3)
