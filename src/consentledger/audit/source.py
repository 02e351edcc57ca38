"""The chain reads audit needs, as raw (batched) JSON-RPC over a Ledger's connection.

Raw requests skip web3's per-field result formatting, which dominates the cost of reading many
logs and block headers, and let one HTTP round trip carry hundreds of calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import keccak

from consentledger.audit.events import as_int, hex_bytes
from consentledger.errors import ChainUnavailableError, ConsentLedgerError

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

BATCH_SIZE = 200
"""Calls per JSON-RPC batch: large enough to amortise the round trip, small enough for any node."""

_HEAD_SELECTOR = keccak(text="head(bytes32)")[:4]


class _RpcRefusedError(ChainUnavailableError):
    """Raised when the node answers a call with a JSON-RPC error (it is reachable, but refuses)."""


@dataclass(frozen=True)
class BlockRef:
    """What the index keeps of a block: number, hash, parent hash and timestamp."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


class ChainSource:
    """Reads blocks, logs, heads and transactions of one deployment's chain."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.addresses = [str(ledger.consortium.address), str(ledger.access.address)]
        self._provider: Any = ledger.w3.provider

    def chain_id(self) -> int:
        """Return the chain id the RPC serves."""
        return as_int(self._request("eth_chainId", []))

    def block_number(self) -> int:
        """Return the number of the chain's latest block."""
        return as_int(self._request("eth_blockNumber", []))

    def blocks(self, numbers: Iterable[int]) -> dict[int, BlockRef]:
        """Return the headers of `numbers` that exist on the chain now (missing ones are left out)."""
        wanted = sorted(set(numbers))
        results = self._batch([("eth_getBlockByNumber", [hex(n), False]) for n in wanted])
        found: dict[int, BlockRef] = {}
        for number, block in zip(wanted, results, strict=True):
            if block:
                found[number] = BlockRef(
                    number, str(block["hash"]).lower(), str(block["parentHash"]).lower(), as_int(block["timestamp"])
                )
        return found

    def logs(self, first: int, last: int) -> list[dict[str, Any]]:
        """Return both contracts' logs in blocks first..last, ordered by (block, log index).

        A node that refuses the range (too many results) is asked again for each half.
        """
        params = [{"fromBlock": hex(first), "toBlock": hex(last), "address": self.addresses}]
        try:
            found: list[dict[str, Any]] = self._request("eth_getLogs", params)
        except _RpcRefusedError:
            if first >= last:
                raise
            middle = (first + last) // 2
            return self.logs(first, middle) + self.logs(middle + 1, last)
        return sorted(found, key=lambda log: (as_int(log["blockNumber"]), as_int(log["logIndex"])))

    def heads(self, records: Sequence[str], block: int) -> dict[str, str]:
        """Return each record's hash-chain head as of `block` (0x-hex, zero before any access)."""
        access = self.addresses[1]
        calls = [
            ("eth_call", [{"to": access, "data": "0x" + (_HEAD_SELECTOR + hex_bytes(r)).hex()}, hex(block)])
            for r in records
        ]
        return {r: "0x" + hex_bytes(h).hex() for r, h in zip(records, self._batch(calls), strict=True)}

    def transaction_input(self, tx_hash: str) -> bytes | None:
        """Return the calldata of transaction `tx_hash`, or None if the chain does not know it."""
        tx = self._request("eth_getTransactionByHash", [tx_hash])
        return hex_bytes(tx["input"]) if tx else None

    # ------------------------------------------------------------------ plumbing

    def _request(self, method: str, params: list[Any]) -> Any:
        try:
            response = self._provider.make_request(method, params)
        except ConsentLedgerError:
            raise
        except (TypeError, AttributeError, NameError):
            raise  # our bug, not the chain's
        except Exception as exc:
            raise ChainUnavailableError(f"{method} failed: {exc}") from exc
        return _result(method, response)

    def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not hasattr(self._provider, "make_batch_request"):
            return [self._request(method, params) for method, params in calls]
        results: list[Any] = []
        for start in range(0, len(calls), BATCH_SIZE):
            chunk = calls[start : start + BATCH_SIZE]
            try:
                responses = self._provider.make_batch_request(chunk)
            except (TypeError, AttributeError, NameError):
                raise
            except Exception as exc:
                raise ChainUnavailableError(f"batch of {len(chunk)} {chunk[0][0]} calls failed: {exc}") from exc
            if not isinstance(responses, list) or len(responses) != len(chunk):
                raise ChainUnavailableError(f"batch of {chunk[0][0]} calls answered {responses!r:.200}")
            # JSON-RPC lets a node answer a batch in any order; request ids follow the call order.
            ordered = sorted(responses, key=lambda r: as_int(r.get("id", 0)))
            results.extend(_result(method, r) for (method, _), r in zip(chunk, ordered, strict=True))
        return results


def _result(method: str, response: Any) -> Any:
    if not isinstance(response, dict):
        raise ChainUnavailableError(f"{method} answered {response!r:.200}")
    if response.get("error"):
        raise _RpcRefusedError(f"{method} failed: {response['error']}")
    return response.get("result")
