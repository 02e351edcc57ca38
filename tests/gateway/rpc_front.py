"""A JSON-RPC front for anvil that holds its callers to a Besu node's limits and notes what they asked.

anvil serves `eth_getLogs` over any range and keeps any number of a sender's transactions; a Besu
RPC node refuses a range beyond `--rpc-max-logs-range` and its pool keeps few transactions per
sender. Gateways pointed at this front instead of at anvil meet the first limit for real (the
refusal Besu answers, as a JSON-RPC error), and the front notes every `eth_getLogs` range and, for
every raw transaction, how many of its sender's transactions the pool held once it was taken, so a
test can show both limits were respected. Everything else is passed to anvil as it is, unless the
front is `down`.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from eth_account import Account

from consentledger.chain.node import HOST

RANGE_REFUSED = {"code": -32005, "message": "Requested range exceeds maximum RPC range limit"}
"""Besu's answer to an `eth_getLogs` spanning more blocks than `--rpc-max-logs-range`."""
_BLOCK_TAGS = ("latest", "pending", "safe", "finalized")


@dataclass
class Noted:
    """What the front saw: the `eth_getLogs` ranges it served and refused, and every raw transaction."""

    ranges: list[tuple[int, int]] = field(default_factory=list)
    refused: list[tuple[int, int]] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)
    """(sender, tx hash) of each raw transaction the chain took, in the order taken."""
    most_pending: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """The most transactions of each sender (lowercase address) in the pool right after one was taken."""


class RpcFront:
    """A threaded HTTP server on 127.0.0.1 relaying JSON-RPC to `upstream` within Besu's limits (see the module)."""

    def __init__(self, upstream: str, *, max_logs_range: int) -> None:
        self.upstream = upstream
        self.max_logs_range = max_logs_range
        self.noted = Noted()
        self.down = threading.Event()
        """Set: every request answers HTTP 503, as a node that is down (anvil mines on meanwhile)."""
        self._client = httpx.Client(timeout=30, trust_env=False)
        self._lock = threading.Lock()  # guards `noted`
        self._send_lock = threading.Lock()  # one raw transaction at a time, so the pool count after it is its own
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if front.down.is_set():
                    self.send_error(503, "node down")
                    return
                answer = json.dumps(front.answer(json.loads(body))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: a gateway polls receipts many times a second

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-front", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the connection to anvil."""
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def call(self, method: str, params: list[Any]) -> Any:
        """Return anvil's result for one call made straight to it (not noted, no limits)."""
        reply = self._forward({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def answer(self, request: Any) -> Any:
        """Return the reply to one JSON-RPC request or batch."""
        if isinstance(request, list):
            return [self._one(call) for call in request]
        return self._one(request)

    def _one(self, call: dict[str, Any]) -> dict[str, Any]:
        method, params = call.get("method"), call.get("params") or []
        if method == "eth_getLogs" and params and "blockHash" not in params[0]:
            first, last = self._block(params[0].get("fromBlock")), self._block(params[0].get("toBlock"))
            if last - first + 1 > self.max_logs_range:
                with self._lock:
                    self.noted.refused.append((first, last))
                return {"jsonrpc": "2.0", "id": call.get("id"), "error": RANGE_REFUSED}
            with self._lock:
                self.noted.ranges.append((first, last))
        if method == "eth_sendRawTransaction":
            return self._send(call)
        return self._forward(call)

    def _send(self, call: dict[str, Any]) -> dict[str, Any]:
        sender = str(Account.recover_transaction(call["params"][0])).lower()
        with self._send_lock:
            reply = self._forward(call)
            if "result" in reply:
                pool = self.call("txpool_content", [])["pending"]
                held = next((len(txs) for address, txs in pool.items() if address.lower() == sender), 0)
                with self._lock:
                    self.noted.sent.append((sender, str(reply["result"])))
                    self.noted.most_pending[sender] = max(self.noted.most_pending[sender], held)
        return reply

    def _block(self, tag: Any) -> int:
        """Return the block number a `fromBlock`/`toBlock` names (absent or a tag: the latest)."""
        if tag is None or tag in _BLOCK_TAGS:
            return int(self.call("eth_blockNumber", []), 16)
        if tag == "earliest":
            return 0
        return int(tag, 16) if isinstance(tag, str) else int(tag)

    def _forward(self, call: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._client.post(self.upstream, json=call).json()
        return reply
