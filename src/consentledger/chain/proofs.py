"""Raw block fields and `eth_getProof` answers, as the node sends them, for offline receipts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consentledger.chain.access_logs import as_bytes
from consentledger.chain.ledger import Ledger
from consentledger.errors import ChainUnavailableError, NotFoundError


@dataclass(frozen=True)
class StorageProof:
    """One storage slot of an account at a block, with the trie nodes proving it (`eth_getProof`)."""

    account_proof: tuple[bytes, ...]
    storage_root: bytes
    value: int
    storage_proof: tuple[bytes, ...]


def block_fields(ledger: Ledger, number: int) -> dict[str, Any]:
    """Return block `number`'s JSON-RPC fields as the node sends them (0x-hex strings), without transactions."""
    block = ledger.rpc("eth_getBlockByNumber", [hex(number), False])
    if not isinstance(block, dict):
        raise NotFoundError(f"the chain has no block {number}")
    return block


def storage_proof(ledger: Ledger, address: str, slot: bytes, number: int) -> StorageProof:
    """Return `address`'s storage `slot` at block `number` and its account and storage proofs."""
    answer = ledger.rpc("eth_getProof", [address, ["0x" + slot.hex()], hex(number)])
    try:
        (entry,) = answer["storageProof"]
        return StorageProof(
            account_proof=tuple(as_bytes(n) for n in answer["accountProof"]),
            storage_root=as_bytes(answer["storageHash"]),
            value=int(entry["value"], 16),
            storage_proof=tuple(as_bytes(n) for n in entry["proof"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainUnavailableError(f"eth_getProof answered garbage: {exc!r}") from None

