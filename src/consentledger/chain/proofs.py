"""Raw block fields and `eth_getProof` answers, as the node sends them, for offline receipts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    block = _request(ledger, "eth_getBlockByNumber", [hex(number), False])
    if not isinstance(block, dict):
        raise NotFoundError(f"the chain has no block {number}")
    return block


def storage_proof(ledger: Ledger, address: str, slot: bytes, number: int) -> StorageProof:
    """Return `address`'s storage `slot` at block `number` and its account and storage proofs."""
    answer = _request(ledger, "eth_getProof", [address, ["0x" + slot.hex()], hex(number)])
    try:
        (entry,) = answer["storageProof"]
        return StorageProof(
            account_proof=tuple(_bytes(n) for n in answer["accountProof"]),
            storage_root=_bytes(answer["storageHash"]),
            value=int(entry["value"], 16),
            storage_proof=tuple(_bytes(n) for n in entry["proof"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainUnavailableError(f"eth_getProof answered garbage: {exc!r}") from None


def _request(ledger: Ledger, method: str, params: list[Any]) -> Any:
    try:
        response = ledger.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    except OSError as exc:
        raise ChainUnavailableError(f"{method} failed: {exc}") from exc
    if "error" in response:
        raise ChainUnavailableError(f"{method} failed: {response['error']}")
    return response.get("result")


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)
