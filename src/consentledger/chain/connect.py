"""Connect to any Ethereum JSON-RPC endpoint (ganache, anvil, Besu QBFT, ...)."""

from __future__ import annotations

from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint

from consentledger.errors import ChainUnavailableError


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """Return a Web3 bound to `rpc_url` after checking it answers; raise ChainUnavailableError."""
    if not rpc_url.startswith(("http://", "https://")):
        raise ChainUnavailableError(f"unsupported RPC URL {rpc_url!r}: use http(s)://host:port")
    # web3's validation asks the node for eth_chainId before every eth_call and eth_estimateGas; a
    # chain's id never changes, so the provider answers it from its cache after the first time.
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
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
        raise ChainUnavailableError(f"no Ethereum JSON-RPC answer at {rpc_url}: {_short(exc)}") from exc
    return w3


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
