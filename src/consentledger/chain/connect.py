"""Connect to any Ethereum JSON-RPC endpoint (ganache, anvil, Besu QBFT, ...)."""

from __future__ import annotations

import socket

import requests
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import RPCEndpoint

from consentledger.errors import ChainUnavailableError

READ_RETRIES = ExceptionRetryConfiguration(
    errors=(ConnectionError, requests.ConnectionError, requests.HTTPError, requests.Timeout),
    retries=3, backoff_factor=0.05,
)
"""Reads (web3's allowlist: never eth_sendRawTransaction) are asked again after a failed connection.

web3's default lists the builtin ConnectionError, which requests' own ConnectionError is not: a
keep-alive connection the node closed while it sat in the pool (ganache does so under load) then
failed the next read with a reset at once. Three quick retries (0.05, 0.1, 0.2 s) keep a node that
is really down a prompt failure.
"""


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """Return a Web3 bound to `rpc_url` after checking it answers; raise ChainUnavailableError."""
    if not rpc_url.startswith(("http://", "https://")):
        raise ChainUnavailableError(f"unsupported RPC URL {rpc_url!r}: use http(s)://host:port")
    # web3's validation asks the node for eth_chainId before every eth_call and eth_estimateGas; a
    # chain's id never changes, so the provider answers it from its cache after the first time.
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")}, exception_retry_configuration=READ_RETRIES,
    )
    w3 = Web3(provider)
    # Besu QBFT (and other BFT/PoA chains) put validator data in extraData beyond 32 bytes.
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    # web3's validation reads eth_chainId twice before every eth_call and eth_estimateGas, to check a chain id
    # our calls never declare: transactions go signed and raw, and `Ledger.verify` checks the chain id once.
    w3.middleware_onion.remove("validation")
    try:
        _ = w3.eth.chain_id
    except Exception as exc:
        raise ChainUnavailableError(f"chain unreachable at {rpc_url}: {unreachable_reason(exc)}") from None
    return w3


def unreachable_reason(exc: BaseException) -> str:
    """Return in a few words why a JSON-RPC request failed: "connection refused", "timed out", "HTTP 404 ...".

    requests and urllib3 wrap the socket's error two or three times in messages of pool internals;
    the innermost cause is the one a person can act on.
    """
    causes = _causes(exc)
    for cause in reversed(causes):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, socket.gaierror):
            return f"host name not resolved ({cause.strerror})"
        if isinstance(cause, TimeoutError) or type(cause).__name__ in ("ReadTimeout", "ReadTimeoutError"):
            return "no answer in time"
        response = getattr(cause, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return f"HTTP {response.status_code} {response.reason or ''}".rstrip() + " (is it a JSON-RPC endpoint?)"
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[:1].lower() + cause.strerror[1:]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:200].rsplit(" ", 1)[0] + " …"


def _causes(exc: BaseException) -> list[BaseException]:
    """Return `exc` and the exceptions it wraps (causes, contexts, urllib3's `reason`), outermost first."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 16:
        chain.append(seen)
        reason = getattr(seen, "reason", None)
        seen = seen.__cause__ or seen.__context__ or (reason if isinstance(reason, BaseException) else None)
    return chain
