"""Send contract transactions from one local signer: estimate, allocate a nonce, sign, broadcast, watch.

Nothing but `eth_sendRawTransaction` runs under the signer's lock: the gas estimate (skipped when the
caller gives the gas) comes before it, the gas price, chain id and block gas limit come from a cache
(`ChainParams`), and receipts come from the connection's one `ReceiptWatcher` afterwards. So one
signer's transactions go out back to back while earlier ones are still being mined, up to
`max_pending` at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.types import TxReceipt

from consentledger.chain.connect import unreachable_reason
from consentledger.chain.funds import SignerFunds, insufficient_funds
from consentledger.chain.nonces import NonceAllocator
from consentledger.chain.params import ChainParams
from consentledger.chain.reverts import RevertDecoder, revert_data
from consentledger.chain.watcher import ReceiptWatcher, Release
from consentledger.errors import (
    ChainUnavailableError,
    ContractRevertError,
    SignerBusyError,
    TransactionFailedError,
    TransactionNotMinedError,
)

Call = ContractFunction | ContractConstructor

_GAS_MARGIN = 1.25
# How nodes (geth, Besu, anvil, ganache) say they already have a transaction, or its nonce is used.
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "already in pool")
_NONCE_USED = ("nonce too low", "nonce is too low", "correct nonce")
# How they refuse a transaction whose nonce a pending (not yet mined) transaction already holds.
_NONCE_HELD = ("replacement transaction underpriced", "replacement transaction is underpriced")
_NONCE_RETRIES = 3
"""How many times `submit` signs again after a refusal for a used nonce (each time with a fresh one)."""


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


class PendingTransaction:
    """A broadcast transaction: its hash and nonce now, its receipt from `result()`."""

    def __init__(self, sender: TransactionSender, tx_hash: bytes, nonce: int, call: Call | None,
                 receipt: Future[TxReceipt]) -> None:
        self.tx_hash = tx_hash
        self.nonce = nonce
        self._sender = sender
        self._call = call
        self._receipt = receipt

    def done(self) -> bool:
        """Return whether the transaction is mined (and confirmed) or given up."""
        return self._receipt.done()

    def result(self, timeout: float | None = None) -> TxReceipt:
        """Return the receipt once mined (and confirmed); raise as `TransactionSender.wait_receipt` does.

        Without `timeout` wait until the watcher resolves it (at the latest the sender's timeout
        after the broadcast); with one, TransactionNotMinedError after that long (asking again is fine).
        """
        return self._sender._settled(self._receipt, self.tx_hash, self._call, timeout)


class TransactionSender:
    """Signs and sends transactions for one account; reverts become ContractRevertError.

    `max_pending` bounds this signer's broadcast-but-unmined transactions (None: no bound); the
    bound is shared with every sender of the same `nonces`. `submit` waits `slot_timeout` seconds
    (default: `timeout`) for a slot. Transactions sent with `sign` and `broadcast` (the outbox
    relay) take no slot.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        *,
        nonces: NonceAllocator | None = None,
        confirmations: int = 0,
        timeout: float = 120.0,
        watcher: ReceiptWatcher | None = None,
        params: ChainParams | None = None,
        max_pending: int | None = None,
        slot_timeout: float | None = None,
        funds: SignerFunds | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.decoder = decoder
        self.nonces = nonces or NonceAllocator.for_chain(w3)
        self.confirmations = confirmations
        self.timeout = timeout
        self.watcher = watcher or ReceiptWatcher(w3)
        self.params = params or ChainParams(w3)
        self.max_pending = max_pending
        self.slot_timeout = slot_timeout
        # Checked before every signature: a signer that cannot pay refuses at once and sends nothing.
        self.funds = funds or SignerFunds(w3, account.address, self.params)

    @property
    def address(self) -> str:
        """Return the signer's address."""
        return str(self.account.address)

    def transact(self, call: Call, *, gas: int | None = None) -> TxReceipt:
        """Send `call` and return its receipt once mined (and confirmed); raise on revert.

        With `gas` the call is not estimated (a revert then shows only once mined, replayed to name
        the rule). See `submit`.
        """
        return self.submit(call, gas=gas).result()

    def submit(
        self, call: Call, *, gas: int | None = None, before_broadcast: Callable[[SignedCall], None] | None = None,
    ) -> PendingTransaction:
        """Sign and broadcast `call`; return its pending transaction at once (the receipt from `result()`).

        A pending slot is taken first (SignerBusyError if none frees within `slot_timeout`),
        so at most `max_pending` of the signer's calls are being estimated or are in the pool: on a
        node answering one request at a time (ganache) a crowd of estimates would otherwise queue
        ahead of every broadcast. The estimate (unless `gas` is given) raises ContractRevertError
        without sending anything, as does InsufficientFundsError when the signer cannot pay for the gas
        (`SignerFunds`). Then a nonce is allocated, the transaction signed and broadcast. A node refusing
        it because its nonce is used (another transaction of this signer, e.g. sent with the same
        key outside this process, took it) resyncs the nonces and signs again: the refused
        transaction exists nowhere, so it can never land as well.

        `before_broadcast` runs with each signed transaction before it is sent (again for a
        re-signed one), under the signing lock: to save it, say, so a restart can find it. If it
        raises, nothing is sent and the nonce is free again.
        """
        release = self._reserve_slot()
        try:
            unsigned = self._prepare(call, gas)
            signed = self._sign_and_broadcast(unsigned, before_broadcast)
            receipt = self.watcher.watch(signed.tx_hash, timeout=self.timeout, confirmations=self.confirmations,
                                         release=release)
        except BaseException:
            if release is not None:
                release()
            raise
        return PendingTransaction(self, signed.tx_hash, signed.nonce, call, receipt)

    def sign(self, call: Call, *, gas: int | None = None) -> SignedCall:
        """Estimate gas for `call` (unless `gas` is given), allocate the next nonce and sign it; nothing is sent.

        A revert during estimation raises ContractRevertError and allocates no nonce. The caller
        owns the nonce from here: it must broadcast the transaction (or resync the allocator), and
        should hold `nonces.signing_lock` from before this call until then.
        """
        return self._sign(self._prepare(call, gas))

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

    def wait_receipt(self, tx_hash: bytes, call: Call | None = None, *, timeout: float | None = None) -> TxReceipt:
        """Return the receipt of `tx_hash` once mined (and confirmed).

        A mined revert raises ContractRevertError naming the rule when `call` (the call that was
        signed) is given to replay, else TransactionFailedError. No receipt (or not enough
        confirmations) within `timeout` seconds (default: the sender's) raises
        TransactionNotMinedError, a TransactionFailedError: the transaction may still be mined.
        """
        timeout = self.timeout if timeout is None else timeout
        receipt = self.watcher.watch(tx_hash, timeout=timeout, confirmations=self.confirmations)
        return self._settled(receipt, tx_hash, call, None)

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

    def _prepare(self, call: Call, gas: int | None) -> dict[str, Any]:
        """Return the unsigned transaction of `call` but its nonce; no lock is held, nothing allocated."""
        limit = self.params.gas_limit()
        if gas is None:
            gas = self._estimate(call)
        tx: dict[str, Any] = {
            "from": self.address,
            "gas": min(int(gas), limit),
            "gasPrice": self.params.gas_price(),
            "chainId": self.params.chain_id(),
        }
        self.funds.require(tx["gas"])
        return dict(call.build_transaction(tx))  # type: ignore[arg-type]

    def _estimate(self, call: Call) -> int:
        try:
            estimate = call.estimate_gas({"from": self.address})
        except Exception as exc:
            raise self._failure("estimate gas", exc) from exc
        return int(estimate * _GAS_MARGIN) + 10_000

    def _sign(self, unsigned: dict[str, Any]) -> SignedCall:
        nonce = self.nonces.allocate(self.address)
        signed = self.account.sign_transaction({**unsigned, "nonce": nonce})
        return SignedCall(raw=bytes(signed.raw_transaction), tx_hash=bytes(signed.hash), nonce=nonce)

    def _sign_and_broadcast(
        self, unsigned: dict[str, Any], before_broadcast: Callable[[SignedCall], None] | None = None,
    ) -> SignedCall:
        for attempt in range(_NONCE_RETRIES + 1):
            # Held from the nonce to the broadcast, so no signed-but-unsent transaction exists when
            # another sender fails and resyncs: a resync never hands out a nonce a pending one owns.
            with self.nonces.signing_lock(self.address):
                signed = self._sign(unsigned)
                try:
                    if before_broadcast is not None:
                        before_broadcast(signed)
                    self.broadcast(signed.raw)
                except TransactionFailedError as exc:
                    self.nonces.resync(self.address)
                    if attempt < _NONCE_RETRIES and nonce_clash(exc):
                        continue
                    raise
                except Exception:
                    self.nonces.resync(self.address)
                    raise
            return signed
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _reserve_slot(self) -> Release | None:
        if self.max_pending is None:
            return None
        wait = self.timeout if self.slot_timeout is None else self.slot_timeout
        release = self.nonces.reserve_pending(self.address, self.max_pending, wait)
        if release is None:
            raise SignerBusyError(
                f"{self.address} kept {self.max_pending} transactions pending for {wait:g} s; nothing was sent")
        return release

    def _settled(self, receipt: Future[TxReceipt], tx_hash: bytes, call: Call | None,
                 timeout: float | None) -> TxReceipt:
        """Return the watched receipt, or raise: a mined revert replayed, no receipt in time."""
        try:
            mined = receipt.result(timeout)
        except FutureTimeout:
            raise TransactionNotMinedError(f"transaction 0x{tx_hash.hex()} not mined in {timeout:.0f} s") from None
        if mined["status"] != 1:
            raise self._replay_revert(mined, call)
        return mined

    def _replay_revert(
        self, receipt: TxReceipt, call: ContractFunction | ContractConstructor | None
    ) -> Exception:
        """A mined failure (state changed after estimation): replay it to learn the rule.

        First on the state before its block, then after it: with several transactions in flight, the
        one that changed the state may be earlier in the same block.
        """
        if isinstance(call, ContractFunction):
            for block in (receipt["blockNumber"] - 1, receipt["blockNumber"]):
                try:
                    call.call({"from": self.address}, block_identifier=block)
                except Exception as exc:
                    data = revert_data(exc)
                    if data is not None:
                        return self.decoder.decode(data)
        return TransactionFailedError(f"transaction 0x{receipt['transactionHash'].hex()} reverted")

    def _call_chain(self, fetch: Any) -> Any:
        try:
            return fetch()
        except (OSError, Web3Exception) as exc:
            raise ChainUnavailableError(f"chain unreachable: {unreachable_reason(exc)}") from exc

    def _failure(self, step: str, exc: Exception) -> Exception:
        if isinstance(exc, ContractRevertError):
            return exc
        data = revert_data(exc)
        if data is not None:
            return self.decoder.decode(data)
        if isinstance(exc, OSError) or "connect" in str(exc).lower():
            return ChainUnavailableError(f"chain unreachable during {step}: {unreachable_reason(exc)}")
        if insufficient_funds(exc):
            return self.funds.refused(exc)
        return TransactionFailedError(f"{step} failed: {exc}")
