"""Send contract transactions from one local signer: estimate, allocate a nonce, sign, wait."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import TimeExhausted, TransactionNotFound, Web3Exception
from web3.types import TxReceipt

from consentledger.chain.nonces import NonceAllocator
from consentledger.chain.reverts import RevertDecoder, revert_data
from consentledger.errors import (
    ChainUnavailableError,
    ContractRevertError,
    TransactionFailedError,
    TransactionNotMinedError,
)

_GAS_MARGIN = 1.25
# How nodes (geth, Besu, anvil, ganache) say they already have a transaction, or its nonce is used.
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "already in pool")
_NONCE_USED = ("nonce too low", "nonce is too low", "correct nonce")
# How they refuse a transaction whose nonce a pending (not yet mined) transaction already holds.
_NONCE_HELD = ("replacement transaction underpriced", "replacement transaction is underpriced")
_NONCE_RETRIES = 3
"""How many times `transact` signs again after a refusal for a used nonce (each time with a fresh one)."""


def nonce_clash(exc: Exception) -> bool:
    """Return whether a node refused a transaction because another transaction holds or used its nonce."""
    message = str(exc).lower().replace("_", " ")
    return any(marker in message for marker in (*_NONCE_USED, *_NONCE_HELD))


@dataclass(frozen=True)
class SignedCall:
    """A signed, not yet sent transaction: the raw bytes to broadcast, its hash and nonce."""

    raw: bytes
    tx_hash: bytes
    nonce: int


class TransactionSender:
    """Signs and sends transactions for one account; reverts become ContractRevertError."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        *,
        nonces: NonceAllocator | None = None,
        confirmations: int = 0,
        timeout: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.decoder = decoder
        self.nonces = nonces or NonceAllocator.for_chain(w3)
        self.confirmations = confirmations
        self.timeout = timeout
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        """Return the signer's address."""
        return str(self.account.address)

    def transact(self, call: ContractFunction | ContractConstructor) -> TxReceipt:
        """Send `call` and return its receipt once mined (and confirmed); raise on revert.

        A node refusing the transaction because its nonce is used (another transaction of this
        signer, e.g. sent with the same key outside this process, took it) resyncs the nonces and
        signs again: the refused transaction exists nowhere, so it can never land as well.
        """
        for attempt in range(_NONCE_RETRIES + 1):
            with self.nonces.signing_lock(self.address):
                signed = self.sign(call)
                try:
                    self.broadcast(signed.raw)
                except TransactionFailedError as exc:
                    self.nonces.resync(self.address)
                    if attempt < _NONCE_RETRIES and nonce_clash(exc):
                        continue
                    raise
                except Exception:
                    self.nonces.resync(self.address)
                    raise
            return self.wait_receipt(signed.tx_hash, call)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def sign(self, call: ContractFunction | ContractConstructor) -> SignedCall:
        """Estimate gas for `call`, allocate the next nonce and sign it; nothing is sent.

        A revert during estimation raises ContractRevertError and allocates no nonce. The caller
        owns the nonce from here: it must broadcast the transaction (or resync the allocator).
        """
        gas = self._estimate(call)
        tx: dict[str, Any] = {
            "from": self.address,
            "gas": gas,
            "gasPrice": self._call_chain(lambda: self.w3.eth.gas_price),
            "chainId": self._chain(),
            "nonce": self.nonces.allocate(self.address),  # last: nothing above may fail with a nonce taken
        }
        built = call.build_transaction(tx)  # type: ignore[arg-type]
        signed = self.account.sign_transaction(dict(built))  # type: ignore[arg-type]
        return SignedCall(raw=bytes(signed.raw_transaction), tx_hash=bytes(signed.hash), nonce=int(tx["nonce"]))

    def broadcast(self, raw: bytes, *, resend: bool = False) -> None:
        """Send a signed transaction; a node that already knows it is fine.

        With `resend` (the same signed transaction again, after a timeout or a restart) "nonce too
        low" is fine too: the transaction may already be mined, and `wait_receipt` tells.
        """
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            message = str(exc).lower().replace("_", " ")
            if any(marker in message for marker in _ALREADY_KNOWN):
                return
            if resend and any(marker in message for marker in _NONCE_USED):
                return
            raise self._failure("send", exc) from exc

    def wait_receipt(
        self,
        tx_hash: bytes,
        call: ContractFunction | ContractConstructor | None = None,
        *,
        timeout: float | None = None,
    ) -> TxReceipt:
        """Return the receipt of `tx_hash` once mined (and confirmed).

        A mined revert raises ContractRevertError naming the rule when `call` (the call that was
        signed) is given to replay, else TransactionFailedError. No receipt (or not enough
        confirmations) within `timeout` seconds (default: the sender's) raises
        TransactionNotMinedError, a TransactionFailedError: the transaction may still be mined.
        """
        timeout = self.timeout if timeout is None else timeout
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=timeout, poll_latency=0.05)
        except TimeExhausted as exc:
            raise TransactionNotMinedError(f"transaction 0x{tx_hash.hex()} not mined in {timeout:.0f} s") from exc
        if receipt["status"] != 1:
            raise self._replay_revert(receipt, call)
        self._wait_confirmations(receipt["blockNumber"])
        return receipt

    def mined_nonce(self) -> int:
        """Return how many of the signer's transactions are mined (the nonce the chain expects next)."""
        return int(self._call_chain(lambda: self.w3.eth.get_transaction_count(self.account.address, "latest")))

    def receipt(self, tx_hash: bytes) -> TxReceipt | None:
        """Return the receipt of `tx_hash` if it is mined, else None (no waiting)."""

        def fetch() -> TxReceipt | None:
            try:
                return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None

        receipt: TxReceipt | None = self._call_chain(fetch)
        return receipt

    def call(self, call: ContractFunction) -> Any:
        """Run a read-only call from this signer; reverts become ContractRevertError."""
        try:
            return call.call({"from": self.address})
        except Exception as exc:
            raise self._failure("call", exc) from exc

    def _estimate(self, call: ContractFunction | ContractConstructor) -> int:
        try:
            estimate = call.estimate_gas({"from": self.address})
        except Exception as exc:
            raise self._failure("estimate gas", exc) from exc
        limit = self._call_chain(lambda: self.w3.eth.get_block("latest")["gasLimit"])
        return min(int(estimate * _GAS_MARGIN) + 10_000, int(limit))

    def _wait_confirmations(self, block: int) -> None:
        if self.confirmations <= 0:
            return
        deadline = time.monotonic() + self.timeout
        while self.w3.eth.block_number < block + self.confirmations:
            if time.monotonic() > deadline:
                raise TransactionNotMinedError(f"block {block} not confirmed {self.confirmations} times in time")
            time.sleep(0.1)

    def _replay_revert(
        self, receipt: TxReceipt, call: ContractFunction | ContractConstructor | None
    ) -> Exception:
        """A mined failure (state changed after estimation): replay it to learn the rule."""
        try:
            if isinstance(call, ContractFunction):
                call.call({"from": self.address}, block_identifier=receipt["blockNumber"] - 1)
        except Exception as exc:
            data = revert_data(exc)
            if data is not None:
                return self.decoder.decode(data)
        return TransactionFailedError(f"transaction 0x{receipt['transactionHash'].hex()} reverted")

    def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = self._call_chain(lambda: self.w3.eth.chain_id)
        return self._chain_id

    def _call_chain(self, fetch: Any) -> Any:
        try:
            return fetch()
        except (OSError, Web3Exception) as exc:
            raise ChainUnavailableError(f"chain unreachable: {exc}") from exc

    def _failure(self, step: str, exc: Exception) -> Exception:
        if isinstance(exc, ContractRevertError):
            return exc
        data = revert_data(exc)
        if data is not None:
            return self.decoder.decode(data)
        if isinstance(exc, OSError) or "connect" in str(exc).lower():
            return ChainUnavailableError(f"chain unreachable during {step}: {exc}")
        return TransactionFailedError(f"{step} failed: {exc}")
