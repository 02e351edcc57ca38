"""The chain values every transaction needs, read once and cached: chain id, gas price, block gas limit.

Signing a transaction needs all three, and reading them per transaction costs three JSON-RPC round
trips. The chain id never changes; the gas price of a permissioned chain rarely does (a free-gas
network answers 0 for ever), so a couple of seconds' staleness costs nothing; the block gas limit
only caps a gas estimate, so a minute-old value is as good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from web3 import Web3
from web3.exceptions import Web3Exception

from consentledger.chain.connect import unreachable_reason
from consentledger.errors import ChainUnavailableError

T = TypeVar("T")

GAS_PRICE_TTL = 2.0
"""Seconds a gas price read from the chain is used before it is read again."""
GAS_LIMIT_TTL = 60.0
"""Seconds the latest block's gas limit is used before it is read again."""


class _Cached(Generic[T]):
    """One value read with `fetch` at most once per `ttl` seconds (None: once for ever)."""

    def __init__(self, fetch: Callable[[], T], ttl: float | None) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: T | None = None
        self._read_at: float | None = None

    def get(self) -> T:
        # One reader refreshes while the others wait for its answer, so an expired value is read once.
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or (self._ttl is not None and now - self._read_at >= self._ttl):
                self._value = self._fetch()
                self._read_at = now
            return self._value  # type: ignore[return-value]  # set above, may legitimately be 0


class ChainParams:
    """The chain id, gas price and block gas limit of one Web3 connection, cached (see the module)."""

    def __init__(self, w3: Web3, *, gas_price_ttl: float = GAS_PRICE_TTL, gas_limit_ttl: float = GAS_LIMIT_TTL) -> None:
        self._chain_id = _Cached(lambda: int(_read(lambda: w3.eth.chain_id)), None)
        self._gas_price = _Cached(lambda: int(_read(lambda: w3.eth.gas_price)), gas_price_ttl)
        self._gas_limit = _Cached(lambda: int(_read(lambda: w3.eth.get_block("latest")["gasLimit"])), gas_limit_ttl)

    def chain_id(self) -> int:
        """Return the chain id (read once)."""
        return self._chain_id.get()

    def gas_price(self) -> int:
        """Return the chain's gas price, at most `gas_price_ttl` seconds old (0 on a free-gas chain)."""
        return self._gas_price.get()

    def gas_limit(self) -> int:
        """Return the latest block's gas limit, at most `gas_limit_ttl` seconds old: no transaction may use more."""
        return self._gas_limit.get()


def _read(fetch: Callable[[], T]) -> T:
    try:
        return fetch()
    except (OSError, Web3Exception) as exc:
        raise ChainUnavailableError(f"chain unreachable: {unreachable_reason(exc)}") from exc
