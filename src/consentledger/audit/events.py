"""Decode raw chain logs with the contracts' event ABIs into JSON-ready values, without I/O.

The indexer and the benchmarks share this path: `decode_access_log` is exactly what the indexer
does to every AccessRecorded log. Logs may come formatted by web3 (HexBytes, ints) or raw from
JSON-RPC (0x-hex strings); both decode alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from eth_abi import decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from eth_utils.abi import collapse_if_tuple

from consentledger.types import AccessEntry, ActorId, Address, LegalBasis, RecordId

ACCESS_RECORDED = "AccessRecorded"
ACCESS_RECORDED_ABI: dict[str, Any] = {
    "anonymous": False,
    "name": ACCESS_RECORDED,
    "type": "event",
    "inputs": [
        {"indexed": True, "name": "seq", "type": "uint24"},
        {"indexed": True, "name": "record", "type": "bytes32"},
        {"indexed": True, "name": "requester", "type": "address"},
        {"indexed": False, "name": "actor", "type": "bytes32"},
        {"indexed": False, "name": "purpose", "type": "uint8"},
        {"indexed": False, "name": "basis", "type": "uint8"},
        {"indexed": False, "name": "consent", "type": "bytes32"},
        {"indexed": False, "name": "identified", "type": "bool"},
        {"indexed": False, "name": "head", "type": "bytes32"},
        {"indexed": False, "name": "timestamp", "type": "uint40"},
    ],
}
"""IAccessLedger.AccessRecorded; the indexer checks the deployed ABI still has this shape."""

ACCESS_REFUSED = "AccessRefused"
"""IAccessLedger.AccessRefused: an item of a batch that broke a rule (indexed in idx_refusals)."""

ZERO_HASH = "0x" + "00" * 32


@dataclass(frozen=True)
class DecodedEvent:
    """One log, decoded: the event name, its arguments (JSON-ready) and where it sits in the chain."""

    name: str
    args: dict[str, Any]
    contract: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


class AccessRow(NamedTuple):
    """One AccessRecorded event as the index stores it (hex ids, checksummed requester).

    A NamedTuple rather than a frozen dataclass: verify builds one from every indexed access, and
    a tuple is built several times faster.
    """

    record: str
    seq: int
    requester: str
    actor: str
    purpose: int
    basis: int
    """LegalBasis: 0 consent, 1 statutory mandate (`consent` is the mandate id), 2 emergency override."""
    consent: str
    identified: bool
    head: str
    timestamp: int
    block: int
    tx_hash: str
    log_index: int

    def as_row(self) -> dict[str, Any]:
        """Return the row for `idx_accesses` (column name → value)."""
        return self._asdict()

    def entry(self) -> AccessEntry:
        """Return the hash-chain entry `chain.history.link` folds."""
        return AccessEntry(
            record=RecordId(hex_bytes(self.record)), seq=self.seq, requester=Address(self.requester),
            purpose=self.purpose, consent=hex_bytes(self.consent), head=hex_bytes(self.head),
            timestamp=self.timestamp, block_number=self.block, tx_hash=hex_bytes(self.tx_hash),
            identified=self.identified, actor=ActorId(hex_bytes(self.actor)), basis=LegalBasis(self.basis),
        )


@dataclass(frozen=True)
class _EventLayout:
    """An event ABI prepared for decoding: (name, type) of its topics and of its data words."""

    abi: Mapping[str, Any]
    indexed: tuple[tuple[str, str], ...]
    plain: tuple[tuple[str, str], ...]
    plain_static: bool

    @classmethod
    def of(cls, abi: Mapping[str, Any]) -> _EventLayout:
        inputs = [(i["name"], collapse_if_tuple(dict(i)), bool(i.get("indexed"))) for i in abi["inputs"]]
        plain = tuple((name, kind) for name, kind, indexed in inputs if not indexed)
        return cls(
            abi, tuple((name, kind) for name, kind, indexed in inputs if indexed), plain,
            all(_static(kind) for _, kind in plain),
        )


class EventDecoder:
    """Decodes logs of any event in the given ABIs, keyed by topic 0."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        self._events: dict[bytes, _EventLayout] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") == "event" and not item.get("anonymous", False):
                    topic = bytes(event_abi_to_log_topic(item))  # type: ignore[arg-type]
                    self._events[topic] = _EventLayout.of(item)

    def event_abi(self, name: str) -> Mapping[str, Any] | None:
        """Return the ABI of event `name`, if known."""
        return next((e.abi for e in self._events.values() if e.abi["name"] == name), None)

    def decode(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """Return the decoded event, or None for a log of an event these ABIs do not declare."""
        topics = [hex_bytes(t) for t in log["topics"]]
        event = self._events.get(topics[0]) if topics else None
        if event is None or len(event.indexed) != len(topics) - 1:
            return None  # unknown, or the same signature indexed differently: not ours
        args: dict[str, Any] = {
            # A dynamic indexed value is stored as its hash; keep that hash.
            name: _word(kind, topic) if _static(kind) else _hex(topic)
            for (name, kind), topic in zip(event.indexed, topics[1:], strict=True)
        }
        data = hex_bytes(log["data"])
        if event.plain_static and len(data) == 32 * len(event.plain):
            for n, (name, kind) in enumerate(event.plain):
                args[name] = _word(kind, data[32 * n : 32 * n + 32])
        else:
            values = decode([kind for _, kind in event.plain], data)
            for (name, kind), value in zip(event.plain, values, strict=True):
                args[name] = json_value(kind, value)
        return DecodedEvent(
            name=str(event.abi["name"]),
            args=args,
            contract=_checksum(hex_bytes(log["address"])),
            block_number=as_int(log["blockNumber"]),
            block_hash=_hex(hex_bytes(log["blockHash"])),
            tx_hash=_hex(hex_bytes(log["transactionHash"])),
            log_index=as_int(log["logIndex"]),
        )


def decode_access_log(log: Mapping[str, Any]) -> AccessRow:
    """Return the AccessRow of a raw AccessRecorded log; raise ValueError for any other log."""
    event = _ACCESS_DECODER.decode(log)
    if event is None:
        raise ValueError("not an AccessRecorded log")
    return access_row(event)


def access_row(event: DecodedEvent) -> AccessRow:
    """Return the AccessRow carried by a decoded AccessRecorded event."""
    args = event.args
    return AccessRow(
        record=args["record"], seq=int(args["seq"]), requester=args["requester"], actor=args["actor"],
        purpose=int(args["purpose"]), basis=int(args["basis"]),
        consent=args["consent"], identified=bool(args["identified"]), head=args["head"],
        timestamp=int(args["timestamp"]),
        block=event.block_number, tx_hash=event.tx_hash, log_index=event.log_index,
    )


def hex_bytes(value: str | bytes) -> bytes:
    """Return the bytes of a 0x-hex string (or of bytes-like values unchanged)."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def as_int(value: str | int) -> int:
    """Return an int from a JSON-RPC quantity ("0x1a") or an int."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _static(kind: str) -> bool:
    """Return whether `kind` is a one-word ABI type (what an indexed topic can hold by value)."""
    return not (kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("))


def _word(kind: str, word: bytes) -> Any:
    """Return the JSON-ready value of a one-word ABI type; much faster than a general decoder."""
    if kind.startswith("uint"):
        return int.from_bytes(word, "big")
    if kind.startswith("int"):
        return int.from_bytes(word, "big", signed=True)
    if kind == "address":
        return _checksum(word[12:])
    if kind == "bool":
        return word[-1] == 1
    if kind.startswith("bytes"):
        return _hex(word[: int(kind[5:])])
    return json_value(kind, decode([kind], word)[0])


@lru_cache(maxsize=4096)
def _checksum(address: bytes) -> str:
    # Logs name a few members and subjects over and over; checksumming costs a keccak each time.
    return str(to_checksum_address(address))


def json_value(kind: str, value: Any) -> Any:
    """Return `value` of ABI type `kind` as JSON-ready data: hex bytes, checksummed addresses, lists."""
    if kind.endswith("]"):
        inner = kind[: kind.rindex("[")]
        return [json_value(inner, v) for v in value]
    if kind.startswith("("):
        inner_kinds = _split_tuple(kind[1:-1])
        return [json_value(k, v) for k, v in zip(inner_kinds, value, strict=True)]
    if kind == "address":
        return _checksum(hex_bytes(value))
    if kind.startswith("bytes"):
        return _hex(bytes(value))
    return value


def _split_tuple(body: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return [p for p in parts if p]


_ACCESS_DECODER = EventDecoder([[ACCESS_RECORDED_ABI]])
