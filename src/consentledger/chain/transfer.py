"""Paying an account: one value transfer from a funded signer, awaited (`consentledger chain fund`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, is_checksum_address, to_checksum_address
from web3.exceptions import Web3Exception

from consentledger.chain.connect import connect, unreachable_reason
from consentledger.chain.funds import format_amount
from consentledger.chain.reverts import RevertDecoder
from consentledger.chain.sender import TransactionSender
from consentledger.errors import (
    ChainUnavailableError,
    ConfigurationError,
    InsufficientFundsError,
)

T = TypeVar("T")

TRANSFER_GAS = 21_000
"""The gas of a plain value transfer to an account without code (signers are such accounts)."""


@dataclass(frozen=True)
class Transfer:
    """A mined value transfer: who paid whom how much (wei), in which transaction, and the recipient's balance after."""

    payer: str
    to: str
    amount: int
    tx_hash: str
    block: int
    balance: int


def fund(rpc_url: str, payer: LocalAccount, to: str, amount: int, *, timeout: float = 120.0) -> Transfer:
    """Send `amount` wei from `payer` to `to` on `rpc_url`, wait for its receipt, and return it with `to`'s new balance.

    Raises ConfigurationError for a malformed address or a payer paying itself, ChainUnavailableError
    when the chain does not answer, InsufficientFundsError when the payer cannot pay the amount and
    the gas (nothing is sent), TransactionNotMinedError when no receipt comes within `timeout` seconds.
    """
    recipient = checked_address(to)
    if recipient == payer.address:
        raise ConfigurationError(f"the payer and the recipient are the same account, {recipient}")
    sender = TransactionSender(connect(rpc_url), payer, RevertDecoder([]), timeout=timeout)
    return send_value(sender, recipient, amount)


def send_value(sender: TransactionSender, to: str, amount: int) -> Transfer:
    """Send `amount` wei from `sender`'s account to `to` through its nonce allocator; return the mined transfer."""
    w3, payer = sender.w3, sender.address
    if _read(lambda: w3.eth.get_code(to)):  # type: ignore[arg-type]
        raise ConfigurationError(f"{to} is a contract: fund a signer's own account")
    gas = TRANSFER_GAS
    funding = sender.funds.funding(gas, value=amount)
    if not funding.funded:
        raise InsufficientFundsError(
            f"payer {payer} has {format_amount(funding.balance)}; sending {format_amount(amount)} needs ≥ "
            f"{format_amount(funding.needed)} (with {gas:,} gas at gas price {format_amount(funding.gas_price)}): "
            "pay from a funded account (--dev-account N on a local chain, or --keystore FILE)",
            account=payer, balance=funding.balance, needed=funding.needed, gas_price=funding.gas_price,
        )
    tx: dict[str, Any] = {"to": to, "value": amount, "gas": gas, "gasPrice": funding.gas_price,
                          "chainId": sender.params.chain_id()}
    with sender.nonces.signing_lock(payer):
        nonce = sender.nonces.allocate(payer)
        signed = sender.account.sign_transaction({**tx, "nonce": nonce})
        try:
            sender.broadcast(bytes(signed.raw_transaction))
        except BaseException:
            sender.nonces.resync(payer)  # never sent: the nonce is free again
            raise
    receipt = sender.wait_receipt(bytes(signed.hash))
    balance = int(_read(lambda: w3.eth.get_balance(to_checksum_address(to), "latest")))
    return Transfer(payer, to, amount, "0x" + bytes(signed.hash).hex(), int(receipt["blockNumber"]), balance)


def checked_address(text: str) -> str:
    """Return `text` as a checksummed address; ConfigurationError unless it is 0x and 40 hex digits, correctly cased."""
    value = text.strip()
    digits = value[2:]
    one_case = digits == digits.lower() or digits == digits.upper()
    if not (value.startswith("0x") and is_address(value) and (one_case or is_checksum_address(value))):
        raise ConfigurationError(f"{text!r} is not an address: 0x and 40 hex digits, all one case or checksummed")
    return str(to_checksum_address(value))


def _read(fetch: Callable[[], T]) -> T:
    try:
        return fetch()
    except (OSError, Web3Exception) as exc:
        raise ChainUnavailableError(f"chain unreachable: {unreachable_reason(exc)}") from exc
