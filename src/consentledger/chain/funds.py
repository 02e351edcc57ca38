"""Whether a signer can pay: amounts with units, and a signer's balance against the chain's gas price.

A transaction whose sender cannot pay `gas × gas price` (+ value) is refused by the node with
"insufficient funds". Senders check first (`SignerFunds.require`), so a gateway whose signer has
run dry refuses its chain writes at once with `InsufficientFundsError` (503), naming the command
that funds it, instead of queueing writes that can never be sent. A balance that suffices is
re-read at most every `BALANCE_TTL` seconds; one that does not is re-read every time, so a signer
funded just now is used by the very next request. On a zero-gas-price network nothing is needed.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import Web3Exception

from consentledger.chain.connect import connect, unreachable_reason
from consentledger.chain.params import ChainParams
from consentledger.errors import ChainUnavailableError, ConfigurationError, InsufficientFundsError

UNITS = {"wei": 1, "kwei": 10**3, "mwei": 10**6, "gwei": 10**9, "szabo": 10**12, "finney": 10**15,
         "ether": 10**18, "eth": 10**18}
"""The units an amount may carry (case-insensitive); a plain number is wei."""
WRITE_GAS = 150_000
"""Gas of one typical gateway write (a record's registration, ~104,000, with the sender's margin): what
a signer must be able to pay for before a write is accepted, and what `/v1/health` measures it against."""
FUND_WRITES = 1_000
"""How many typical writes the suggested funding amount pays for."""
BALANCE_TTL = 2.0
"""Seconds a balance that suffices is used before it is read again."""

_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_INSUFFICIENT = ("insufficient funds", "insufficient balance", "not enough funds")
# What local development chains answer to web3_clientVersion: their dev accounts can pay.
_DEV_CHAINS = ("ganache", "anvil", "hardhat")


def parse_amount(text: str) -> int:
    """Return the wei in "1ether", "0.5 ether", "1000000gwei" or a plain number of wei ("21000").

    Raises ConfigurationError for anything else, a fraction of a wei, zero, or more than 2²⁵⁶ − 1.
    """
    match = _AMOUNT.match(text)
    unit = (match.group(2) or "wei").lower() if match else ""
    if match is None or unit not in UNITS:
        raise ConfigurationError(
            f"bad amount {text!r}: use a number and a unit ({', '.join(UNITS)}), e.g. 1ether, 0.5 ether, "
            "1000000gwei, or a plain number of wei"
        )
    whole, _, fraction = match.group(1).partition(".")
    size = UNITS[unit]
    # Integers throughout: a Decimal would round past 28 digits, and wei amounts have more.
    scaled = int(fraction or "0") * size
    if scaled % 10 ** len(fraction):
        raise ConfigurationError(f"bad amount {text!r}: it is not a whole number of wei")
    wei = int(whole or "0") * size + scaled // 10 ** len(fraction)
    if wei <= 0:
        raise ConfigurationError(f"bad amount {text!r}: it must be more than 0")
    if wei >= 2**256:
        raise ConfigurationError(f"bad amount {text!r}: more than any account can hold")
    return int(wei)


def format_amount(wei: int, *, compact: bool = False) -> str:
    """Return `wei` exactly, in ether from 0.0001 ether, in gwei from 0.0001 gwei, else in wei ("0.5 ether").

    With `compact` there is no space ("0.5ether"), as `parse_amount` and `chain fund --amount` take it.
    """
    unit = "ether" if wei >= 10**14 else "gwei" if wei >= 10**5 else "wei"
    whole, rest = divmod(wei, UNITS[unit])
    decimals = str(rest).rjust(len(str(UNITS[unit])) - 1, "0").rstrip("0")
    number = f"{whole}.{decimals}" if decimals else str(whole)
    return f"{number}{'' if compact else ' '}{unit}"


def insufficient_funds(exc: BaseException) -> bool:
    """Return whether a node refused a transaction (or its estimate) because its sender cannot pay."""
    message = str(exc).lower()
    return any(marker in message for marker in _INSUFFICIENT)


@dataclass(frozen=True)
class Funding:
    """A signer's balance against what a write of `gas` costs at the chain's gas price (all in wei)."""

    address: str
    balance: int
    gas_price: int
    gas: int
    value: int = 0

    @property
    def needed(self) -> int:
        """Return what the write costs at most: its gas at the gas price, plus the value it sends."""
        return self.gas * self.gas_price + self.value

    @property
    def funded(self) -> bool:
        """Return whether the balance pays for the write (always on a zero-gas-price network)."""
        return self.balance >= self.needed

    def as_json(self) -> dict[str, Any]:
        """Return the funding state for `/v1/health` (wei as decimal strings: they outgrow JSON's safe integers)."""
        return {"address": self.address, "funded": self.funded, "balance": str(self.balance),
                "needed": str(self.needed), "gas_price": str(self.gas_price), "gas": self.gas}


class SignerFunds:
    """One signer's balance: read again at most every `ttl` seconds while it suffices, every time while it does not."""

    def __init__(self, w3: Web3, address: str, params: ChainParams, *, ttl: float = BALANCE_TTL) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.params = params
        self.ttl = ttl
        self._lock = threading.Lock()
        self._balance: tuple[int, float] | None = None  # (balance, monotonic time read)
        self._dev_chain: bool | None = None

    def funding(self, gas: int = WRITE_GAS, *, value: int = 0) -> Funding:
        """Return the signer's funding for a write of `gas` (and `value`); raise ChainUnavailableError."""
        price = self.params.gas_price()
        with self._lock:
            cached = self._balance
            now = time.monotonic()
            if cached is not None and now - cached[1] < self.ttl and cached[0] >= gas * price + value:
                return Funding(self.address, cached[0], price, gas, value)
        balance = self._read_balance()
        with self._lock:
            self._balance = (balance, time.monotonic())
        return Funding(self.address, balance, price, gas, value)

    def require(self, gas: int = WRITE_GAS, *, value: int = 0) -> None:
        """Return if the signer can pay for a write of `gas` (and `value`); raise InsufficientFundsError otherwise."""
        funding = self.funding(gas, value=value)
        if not funding.funded:
            raise self.error(funding)

    def refused(self, exc: BaseException, gas: int = WRITE_GAS) -> InsufficientFundsError:
        """Return the error for a transaction the node refused for funds (the balance is read again)."""
        with self._lock:
            self._balance = None
        try:
            funding = self.funding(gas)
        except ChainUnavailableError:
            funding = Funding(self.address, 0, 0, gas)
        return self.error(funding, node=_node_message(exc))

    def error(self, funding: Funding, *, node: str | None = None) -> InsufficientFundsError:
        """Return the InsufficientFundsError for `funding`, naming the `consentledger chain fund` command."""
        command = self.fund_command(max(funding.needed, 1) * FUND_WRITES)
        cost = f"{funding.gas:,} gas at gas price {format_amount(funding.gas_price)}"
        if funding.value:
            cost += f" + {format_amount(funding.value)} sent"
        detail = (f"signer {self.address} has {format_amount(funding.balance)}; needs ≥ "
                  f"{format_amount(funding.needed)} ({cost}); run {command}")
        if funding.funded:  # after a node's refusal: enough for a typical write, not for the one refused
            detail = (f"signer {self.address} has {format_amount(funding.balance)}, too little for this "
                      f"transaction at gas price {format_amount(funding.gas_price)}; run {command}")
        if node is not None:
            detail = f"the node refused the transaction ({node}): {detail}"
        return InsufficientFundsError(detail, account=self.address, balance=funding.balance, needed=funding.needed,
                                      gas_price=funding.gas_price, fund_command=command)

    def fund_command(self, amount: int) -> str:
        """Return the `consentledger chain fund` command paying `amount` (rounded up to a power of ten) to the signer.

        It pays from dev account 0 on a local development chain (ganache, anvil), else from a keystore
        the operator names.
        """
        rounded = 10 ** (len(str(amount - 1)) if amount > 1 else 0)
        rpc = getattr(self.w3.provider, "endpoint_uri", None)
        payer = "--dev-account 0" if self._is_dev_chain() else "--keystore PAYER.json"
        return (f"consentledger chain fund {self.address} --amount {format_amount(rounded, compact=True)}"
                + (f" --rpc {rpc}" if rpc else "") + f" {payer}")

    def _read_balance(self) -> int:
        try:
            return int(self.w3.eth.get_balance(self.address, "latest"))
        except (OSError, Web3Exception) as exc:
            why = unreachable_reason(exc)
            raise ChainUnavailableError(f"chain unreachable reading the balance of {self.address}: {why}") from exc

    def _is_dev_chain(self) -> bool:
        if self._dev_chain is None:
            try:
                version = str(self.w3.client_version).lower()
            except (OSError, Web3Exception):
                return False
            self._dev_chain = any(name in version for name in _DEV_CHAINS)
        return self._dev_chain


def _node_message(exc: BaseException) -> str:
    """Return a node's refusal in one short line: its JSON-RPC message, without the stack ganache appends."""
    response = getattr(exc, "rpc_response", None)  # web3's Web3RPCError keeps the node's JSON-RPC answer
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "…"


def signer_funds(rpc_url: str, address: str) -> SignerFunds:
    """Return the funding check of `address` on the chain at `rpc_url`; ChainUnavailableError if it does not answer."""
    w3 = connect(rpc_url, timeout=10.0)
    return SignerFunds(w3, address, ChainParams(w3))
