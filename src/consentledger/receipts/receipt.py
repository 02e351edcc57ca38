"""The receipt of one access: its chain entries, its block's header and the trie proofs of the record's head."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address

from consentledger.types import LegalBasis

FORMAT = "consentledger-receipt/2"
HEADS_SLOT = 7
"""Storage slot of AccessLedger's `mapping(bytes32 recordId => bytes32) _heads` (solc storageLayout; a test checks)."""


class ReceiptFormatError(Exception):
    """Raised when a receipt file is not JSON of the receipt format (the message names the field)."""


@dataclass(frozen=True)
class Link:
    """One access entry's fields, as hashed into the record's chain (AccessLedger._append)."""

    seq: int
    requester: str
    actor: bytes
    purpose: int
    basis: LegalBasis
    consent: bytes
    identified: bool
    timestamp: int


@dataclass(frozen=True)
class Receipt:
    """Proof that access `seq` to `record` is in the record's hash chain at block `block_number`.

    `links` starts with access `seq` and holds every later access to the record in the same block,
    so that hashing them onto `previous` (the head before `seq`) gives `head`, the record's head
    after that block, which `storage_proof` proves in the ledger's storage.
    """

    chain_id: int
    ledger: str
    record: bytes
    seq: int
    previous: bytes
    links: tuple[Link, ...]
    head: bytes
    block_number: int
    block_hash: bytes
    header: bytes
    account_proof: tuple[bytes, ...]
    storage_proof: tuple[bytes, ...]
    sealed_header: bytes | None = None
    """A QBFT block's full header RLP (extraData with round and commit seals); `header` is then its on-chain form."""

    def to_json(self) -> dict[str, Any]:
        """Return the receipt as JSON-ready data (bytes as 0x-hex)."""
        return {
            "format": FORMAT, "chain_id": self.chain_id, "ledger": self.ledger, "record": _hex(self.record),
            "seq": self.seq, "previous": _hex(self.previous),
            "entries": [
                {"seq": e.seq, "requester": e.requester, "actor": _hex(e.actor), "purpose": e.purpose,
                 "basis": e.basis.name.lower(), "consent": _hex(e.consent), "identified": e.identified,
                 "timestamp": e.timestamp}
                for e in self.links
            ],
            "head": _hex(self.head), "block_number": self.block_number, "block_hash": _hex(self.block_hash),
            "header": _hex(self.header), "storage_slot": _hex(head_slot(self.record)),
            "account_proof": [_hex(n) for n in self.account_proof],
            "storage_proof": [_hex(n) for n in self.storage_proof],
        } | ({} if self.sealed_header is None else {"sealed_header": _hex(self.sealed_header)})

    def dumps(self) -> str:
        """Return the receipt file's text."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Receipt:
        """Return the receipt in `data`; raise ReceiptFormatError naming the first bad field."""
        if not isinstance(data, dict):
            raise ReceiptFormatError("a receipt is a JSON object")
        if data.get("format") != FORMAT:
            raise ReceiptFormatError(f"format is {data.get('format')!r}, not {FORMAT!r}")
        entries = _get(data, "entries", list)
        if not entries:
            raise ReceiptFormatError("entries is empty")
        links = tuple(
            Link(seq=_get(e, "seq", int), requester=_address(_get(e, "requester", str)),
                 actor=_bytes(e, "actor", 32), purpose=_get(e, "purpose", int), basis=_basis(_get(e, "basis", str)),
                 consent=_bytes(e, "consent", 32),
                 identified=_get(e, "identified", bool), timestamp=_get(e, "timestamp", int))
            for e in (_object(e) for e in entries)
        )
        return cls(
            chain_id=_get(data, "chain_id", int), ledger=_address(_get(data, "ledger", str)),
            record=_bytes(data, "record", 32), seq=_get(data, "seq", int), previous=_bytes(data, "previous", 32),
            links=links, head=_bytes(data, "head", 32), block_number=_get(data, "block_number", int),
            block_hash=_bytes(data, "block_hash", 32), header=_bytes(data, "header"),
            account_proof=_nodes(data, "account_proof"), storage_proof=_nodes(data, "storage_proof"),
            sealed_header=_bytes(data, "sealed_header") if "sealed_header" in data else None,
        )

    @classmethod
    def loads(cls, text: str) -> Receipt:
        """Return the receipt in a receipt file's text."""
        try:
            return cls.from_json(json.loads(text))
        except ValueError as exc:
            if isinstance(exc, ReceiptFormatError):
                raise
            raise ReceiptFormatError(f"not JSON: {exc}") from None


def _basis(name: str) -> LegalBasis:
    try:
        return LegalBasis[name.upper()]
    except KeyError:
        raise ReceiptFormatError(f"basis {name!r} is not consent, mandate or override") from None


def head_slot(record: bytes) -> bytes:
    """Return the storage slot of `_heads[record]`: keccak256(record . uint256(HEADS_SLOT))."""
    return keccak(bytes(record) + HEADS_SLOT.to_bytes(32, "big"))


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReceiptFormatError("an entry is not a JSON object")
    return value


def _get(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    # bool is an int in Python: keep them apart so `true` is no seq and 1 is no flag.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ReceiptFormatError(f"{name} is missing or not a {kind.__name__}")
    return value


def _bytes(data: dict[str, Any], name: str, size: int | None = None) -> bytes:
    text = _get(data, name, str)
    try:
        if not text.startswith("0x"):
            raise ValueError
        value = bytes.fromhex(text[2:])
    except ValueError:
        raise ReceiptFormatError(f"{name} is not 0x-hex") from None
    if size is not None and len(value) != size:
        raise ReceiptFormatError(f"{name} is {len(value)} bytes, not {size}")
    return value


def _nodes(data: dict[str, Any], name: str) -> tuple[bytes, ...]:
    nodes = _get(data, name, list)
    return tuple(_bytes({name: n}, name) for n in nodes)


def _address(text: str) -> str:
    try:
        return to_checksum_address(text)
    except ValueError:
        raise ReceiptFormatError(f"{text!r} is not an address") from None
