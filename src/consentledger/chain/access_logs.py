"""AccessRecorded and AccessRefused logs decoded straight from their words, for the hot path.

web3's event decoding walks the ABI for every log (it re-hashes the event signature and
re-checksums addresses each time): a batch of 256 accesses spent most of its answer there. Both
events have a fixed layout (IAccessLedger), so their words are read directly; the event topics
are computed once and the indexer checks the deployed ABI still has this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from consentledger.types import AccessEntry, ActorId, Address, LegalBasis, RecordId

ACCESS_RECORDED_TOPIC = keccak(
    text="AccessRecorded(uint24,bytes32,address,bytes32,uint8,uint8,bytes32,bool,bytes32,uint40)"
)
ACCESS_REFUSED_TOPIC = keccak(text="AccessRefused(bytes32,address,uint8,bytes32,bytes4,bytes)")


def as_bytes(value: str | bytes) -> bytes:
    """Return a topic or data field as bytes, whether web3 formatted it (HexBytes) or it is raw 0x-hex."""
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


@lru_cache(maxsize=4096)
def _checksum(word: bytes) -> Address:
    return Address(to_checksum_address(word[12:]))


def entry_from_log(log: Mapping[str, Any]) -> AccessEntry:
    """Return the AccessEntry of an AccessRecorded log (topics: seq, record, requester; data: seven words)."""
    topics = [as_bytes(t) for t in log["topics"]]
    data = as_bytes(log["data"])
    return AccessEntry(
        record=RecordId(topics[2]),
        seq=int.from_bytes(topics[1], "big"),
        requester=_checksum(topics[3]),
        actor=ActorId(data[0:32]),
        purpose=int.from_bytes(data[32:64], "big"),
        basis=LegalBasis(int.from_bytes(data[64:96], "big")),
        consent=data[96:128],
        identified=data[128:160] != bytes(32),
        head=data[160:192],
        timestamp=int.from_bytes(data[192:224], "big"),
        block_number=_int(log["blockNumber"]),
        tx_hash=as_bytes(log["transactionHash"]),
    )


def refused_fields(log: Mapping[str, Any]) -> tuple[RecordId, Address, int, ActorId, bytes]:
    """Return (record, requester, purpose, actor, reason) of an AccessRefused log."""
    topics = [as_bytes(t) for t in log["topics"]]
    purpose, actor, _rule, reason = decode(["uint8", "bytes32", "bytes4", "bytes"], as_bytes(log["data"]))
    return RecordId(topics[1]), _checksum(topics[2]), int(purpose), ActorId(bytes(actor)), bytes(reason)


def _int(value: str | int) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)
