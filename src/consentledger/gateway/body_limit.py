"""A request body limit enforced while the body streams in, before anything authenticates or buffers it.

A plain ASGI middleware wrapping every route (`create_app` adds it): a declared `Content-Length` over the limit is
refused before a byte of the body is read; otherwise every `http.request` message is counted as it
arrives (chunked or not) and the request is cut with 413 as soon as the count passes the limit, so
no more than the limit (plus the server's own read buffer) is ever held. The 413 closes the
connection: the rest of an oversized body is never read.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentledger.errors import PayloadTooLargeError


class _BodyTooLarge(Exception):
    """Raised inside the app's `receive` when the body passes the limit (caught by BodyLimit)."""


class BodyLimit:
    """ASGI middleware refusing any HTTP request whose body exceeds `max_bytes` with a 413 JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        counted = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal counted
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _BodyTooLarge:
            if started:  # the app answered before reading it all; its answer stands, the connection ends
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        error = PayloadTooLargeError(f"request body over {self.max_bytes} bytes")
        body = json.dumps({"error": error.code, "detail": str(error)}).encode()
        await send({
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """Return the declared Content-Length, or None when absent or not a plain number (h11 refuses those)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
