"""Besu QBFT block hashes and commit seals, checked with no node against a trusted validator set.

As Besu (hyperledger/besu 3fd224e2, see deploy/README.md) defines them: a QBFT header's extraData is
RLP([vanity, [validators], vote, round, [seals]]) (`QbftExtraDataCodec`); the block's on-chain hash
is keccak256 of the header with extraData re-encoded with round 0 and no seals, the commit-seal hash
the same with the round kept (`BftBlockHashing`); each seal is a secp256k1 signature r ‖ s ‖ v
(v 0 or 1) over that hash, and a block needs distinct seals from ⌈2n/3⌉ of its n validators
(`BftCommitSealsValidationRule`, `BftHelpers.calculateRequiredValidatorQuorum`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import rlp
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak, to_canonical_address, to_checksum_address

from consentledger.receipts.header import HeaderError

EXTRA_DATA, NUMBER = 12, 8
SEAL_LENGTH = 65
_ADD, _DROP = b"\xff", (b"", b"\x00")  # Besu writes a drop as the empty string and reads 0x00 as one too
_MAX_ROUND = 2**31 - 1  # Besu reads the round as a Java int (readIntScalar: at most 4 bytes)


class QbftExtraDataError(HeaderError):
    """Raised when a header or its extraData is not a QBFT one (the message says which part is wrong)."""


@dataclass(frozen=True)
class Vote:
    """A validator vote carried by a block: add or drop `recipient` (a 20-byte address)."""

    recipient: bytes
    add: bool


@dataclass(frozen=True)
class ExtraData:
    """The parts of a QBFT extraData; addresses are 20 bytes, seals 65 (r ‖ s ‖ v)."""

    vanity: bytes
    validators: tuple[bytes, ...]
    vote: Vote | None
    round: int
    seals: tuple[bytes, ...]


@dataclass(frozen=True)
class SealVerdict:
    """Whether a header's commit seals hold for a validator set, why not, and the block hash they vouch for."""

    valid: bool
    reason: str
    block_hash: bytes
    signers: tuple[str, ...] = ()
    """The seals' signers (checksum addresses), in seal order; empty if a seal did not recover."""


def decode_extra_data(raw: bytes) -> ExtraData:
    """Return the parts of a QBFT extraData, read as Besu's `QbftExtraDataCodec.decodeRaw` reads them.

    Items after the seals are ignored (Besu leaves the list leniently); they are not hashed either.
    """
    try:
        items = rlp.decode(raw)
    except rlp.DecodingError as exc:
        raise QbftExtraDataError(f"extraData is not RLP ({exc})") from None
    if not isinstance(items, list) or len(items) < 5:
        raise QbftExtraDataError("extraData is not an RLP list of vanity, validators, vote, round and seals")
    vanity, validators, vote, round_, seals = items[:5]
    if not isinstance(vanity, bytes):
        raise QbftExtraDataError("extraData's vanity is not a byte string")
    if not isinstance(validators, list) or not all(isinstance(v, bytes) and len(v) == 20 for v in validators):
        raise QbftExtraDataError("extraData's validators are not a list of 20-byte addresses")
    if (not isinstance(round_, bytes) or len(round_) > 4 or round_[:1] == b"\0"
            or int.from_bytes(round_, "big") > _MAX_ROUND):
        raise QbftExtraDataError("extraData's round is not an RLP scalar below 2^31 (no leading zeros)")
    if not isinstance(seals, list) or not all(isinstance(s, bytes) and len(s) == SEAL_LENGTH for s in seals):
        raise QbftExtraDataError(f"extraData's seals are not a list of {SEAL_LENGTH}-byte signatures")
    if any(s[64] not in (0, 1) for s in seals):
        raise QbftExtraDataError("a seal's recovery id (its last byte) is not 0 or 1")
    return ExtraData(vanity, tuple(validators), _vote(vote), int.from_bytes(round_, "big"), tuple(seals))


def encode_extra_data(extra: ExtraData) -> bytes:
    """Return the extraData RLP of `extra`, as `QbftExtraDataCodec.encode` writes it."""
    vote: list[bytes] = [] if extra.vote is None else [extra.vote.recipient, _ADD if extra.vote.add else b""]
    return rlp.encode([extra.vanity, list(extra.validators), vote, extra.round, list(extra.seals)])


def onchain_header(header: bytes) -> bytes:
    """Return the header RLP whose keccak256 is the block's hash: extraData with round 0 and no seals.

    The genesis block keeps its extraData as it is (`BftBlockHashing.serializeHeader`).
    """
    return _with_extra_data(header, lambda extra: replace(extra, round=0, seals=()))


def onchain_hash(header: bytes) -> bytes:
    """Return the block hash of a full QBFT header (with seals), as `eth_getBlockByNumber` reports it."""
    return keccak(onchain_header(header))


def commit_seal_hash(header: bytes) -> bytes:
    """Return the hash each commit seal signs: keccak256 of the header, extraData with its round and no seals."""
    return keccak(_with_extra_data(header, lambda extra: replace(extra, seals=())))


def seal_signers(header: bytes) -> tuple[str, ...]:
    """Return the checksum address that made each commit seal of `header`, in seal order.

    Raises QbftExtraDataError if a seal is no signature (r or s out of range, no point to recover).
    """
    digest = commit_seal_hash(header)
    signers = []
    for index, seal in enumerate(header_extra_data(header).seals):
        r, s, v = int.from_bytes(seal[:32], "big"), int.from_bytes(seal[32:64], "big"), seal[64]
        if r == 0 or s == 0:  # Besu's SECPSignature.create wants both in [1, n)
            raise QbftExtraDataError(f"seal {index}: r or s is zero")
        try:
            public = keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest)
        except (BadSignature, ValidationError) as exc:
            raise QbftExtraDataError(f"seal {index}: not a secp256k1 signature ({exc})") from None
        signers.append(public.to_checksum_address())
    return tuple(signers)


def quorum(validators: int) -> int:
    """Return how many distinct seals a block of `validators` validators needs: ⌈2n/3⌉ (Besu's BftHelpers)."""
    if validators < 1:
        raise ValueError("a QBFT network has at least one validator")
    return (2 * validators - 1) // 3 + 1


def check_seals(header: bytes, validators: Collection[str]) -> SealVerdict:
    """Return whether `header`'s commit seals make its block hash valid for the trusted `validators`.

    Valid iff the seals' signers are distinct, each is one of `validators`, and there are at least
    quorum(len(validators)) of them; and the header's own validator list is the trusted set (Besu's
    BftValidatorsValidationRule: sorted ascending, equal to the set in force) or empty (validators
    chosen by a contract). The verdict carries the on-chain hash, to be checked as a trusted one.
    """
    trusted = {to_checksum_address(v) for v in validators}
    try:
        number = _number(header)
        extra = header_extra_data(header)
        block_hash = onchain_hash(header)
    except HeaderError as exc:
        return SealVerdict(False, f"block header: {exc}", b"")
    if number == 0:
        return SealVerdict(False, "the genesis block has no commit seals: trust it by its hash", block_hash)
    if not trusted:
        return SealVerdict(False, "no trusted validators given", block_hash)
    named = [to_checksum_address(v) for v in extra.validators]
    if named and list(extra.validators) != sorted(extra.validators):
        return SealVerdict(False, "the header's validator list is not sorted ascending (Besu refuses it)", block_hash)
    if named and set(named) != trusted:
        return SealVerdict(False, f"the header names validators {', '.join(named)}, not the trusted set "
                                  "(validators were voted in or out: pass the set in force at this block)", block_hash)
    try:
        signers = seal_signers(header)
    except QbftExtraDataError as exc:
        return SealVerdict(False, f"commit seals: {exc}", block_hash)
    if len(set(signers)) != len(signers):
        return SealVerdict(False, "commit seals: a validator sealed the block twice", block_hash, signers)
    strangers = [s for s in signers if s not in trusted]
    if strangers:
        return SealVerdict(False, f"commit seals: {', '.join(strangers)} is not a trusted validator", block_hash,
                           signers)
    needed = quorum(len(trusted))
    if len(signers) < needed:
        return SealVerdict(False, f"commit seals: {len(signers)} of {len(trusted)} validators sealed the block, "
                                  f"a quorum is {needed}", block_hash, signers)
    return SealVerdict(True, f"block {number} (0x{block_hash.hex()}) sealed by {len(signers)} of {len(trusted)} "
                             f"trusted validators (quorum {needed})", block_hash, signers)


def header_extra_data(header: bytes) -> ExtraData:
    """Return the decoded QBFT extraData of a header given as RLP."""
    return decode_extra_data(_items(header)[EXTRA_DATA])


def validators_from_genesis(genesis: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the validators (checksum addresses) a QBFT genesis file's `extraData` names."""
    if not isinstance(genesis.get("config"), dict) or "qbft" not in genesis["config"]:
        raise QbftExtraDataError("the genesis file has no config.qbft: not a QBFT network")
    text = genesis.get("extraData")
    try:
        if not isinstance(text, str) or not text.startswith("0x"):
            raise ValueError
        raw = bytes.fromhex(text[2:])
    except ValueError:
        raise QbftExtraDataError("the genesis file's extraData is not 0x-hex") from None
    validators = decode_extra_data(raw).validators
    if not validators:
        raise QbftExtraDataError("the genesis extraData names no validators (validators chosen by a contract?)")
    return tuple(to_checksum_address(v) for v in validators)


def parse_validators(addresses: Sequence[str]) -> tuple[str, ...]:
    """Return the given addresses as checksum addresses; raise QbftExtraDataError naming one that is not."""
    try:
        return tuple(to_checksum_address(to_canonical_address(a.strip())) for a in addresses)
    except ValueError:
        raise QbftExtraDataError(f"not a list of addresses: {', '.join(addresses)}") from None


def _vote(vote: object) -> Vote | None:
    if vote == []:
        return None
    if not isinstance(vote, list) or len(vote) != 2 or not isinstance(vote[0], bytes) or len(vote[0]) != 20:
        raise QbftExtraDataError("extraData's vote is not an empty list nor [address, add/drop]")
    if vote[1] != _ADD and vote[1] not in _DROP:
        raise QbftExtraDataError("extraData's vote kind is not 0xff (add) nor empty or 0x00 (drop)")
    return Vote(vote[0], vote[1] == _ADD)


def _items(header: bytes) -> list[bytes]:
    try:
        items = rlp.decode(header)
    except rlp.DecodingError as exc:
        raise HeaderError(f"the header is not RLP ({exc})") from None
    if not isinstance(items, list) or len(items) < 15 or not all(isinstance(i, bytes) for i in items):
        raise HeaderError("the header is not a list of at least 15 byte strings")
    return items


def _number(header: bytes) -> int:
    return int.from_bytes(_items(header)[NUMBER], "big")


def _with_extra_data(header: bytes, change: Callable[[ExtraData], ExtraData]) -> bytes:
    items = _items(header)
    if int.from_bytes(items[NUMBER], "big") == 0:
        return header
    items[EXTRA_DATA] = encode_extra_data(change(decode_extra_data(items[EXTRA_DATA])))
    return rlp.encode(items)
