"""Send contract transactions from one local signer: estimate, allocate a nonce, sign, wait."""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import TimeExhausted, Web3Exception
from web3.types import TxReceipt

from consentledger.chain.nonces import NonceAllocator
from consentledger.chain.reverts import RevertDecoder, revert_data
from consentledger.errors import ChainUnavailableError, ContractRevertError, TransactionFailedError

_GAS_MARGIN = 1.25


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
        """Send `call` and return its receipt once mined (and confirmed); raise on revert."""
        gas = self._estimate(call)
        tx: dict[str, Any] = {
            "from": self.address,
            "gas": gas,
            "gasPrice": self._call_chain(lambda: self.w3.eth.gas_price),
            "chainId": self._chain(),
            "nonce": self.nonces.allocate(self.address),
        }
        built = call.build_transaction(tx)  # type: ignore[arg-type]
        signed = self.account.sign_transaction(dict(built))  # type: ignore[arg-type]
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            self.nonces.resync(self.address)
            raise self._failure("send", exc) from exc
        return self._await(tx_hash, call)

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

    def _await(self, tx_hash: bytes, call: ContractFunction | ContractConstructor) -> TxReceipt:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.timeout, poll_latency=0.05
            )
        except TimeExhausted as exc:
            raise TransactionFailedError(f"transaction 0x{tx_hash.hex()} not mined in {self.timeout:.0f} s") from exc
        if receipt["status"] != 1:
            raise self._replay_revert(receipt, call)
        self._wait_confirmations(receipt["blockNumber"])
        return receipt

    def _wait_confirmations(self, block: int) -> None:
        if self.confirmations <= 0:
            return
        deadline = time.monotonic() + self.timeout
        while self.w3.eth.block_number < block + self.confirmations:
            if time.monotonic() > deadline:
                raise TransactionFailedError(f"block {block} not confirmed {self.confirmations} times in time")
            time.sleep(0.1)

    def _replay_revert(self, receipt: TxReceipt, call: ContractFunction | ContractConstructor) -> Exception:
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
