"""A gateway keeps an idle connection open longer than its clients do, so no request meets a connection just closed."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from .world import Consortium

pytestmark = pytest.mark.process

CLIENT_KEEP_ALIVE = 5.0
"""Seconds httpx (GatewayClient's transport) keeps an idle connection for reuse."""


def read_response(sock: socket.socket) -> bytes:
    """Return one HTTP response read from `sock` (headers and a Content-Length body), b"" if it was closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(next(value for name, value in fields.items() if name.lower() == b"content-length"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_outlives_the_clients_keep_alive(consortium: Consortium) -> None:
    """A connection idle a second longer than httpx keeps one still answers: the client, not the gateway, closes
    idle connections, so a client reusing one at its expiry never meets a reset (the soak saw one with the
    gateway closing after 5 s, as httpx does)."""
    url = httpx.URL(consortium.health.url)
    request = f"GET /v1/health HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n\r\n".encode()
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall(request)
        first = read_response(sock)
        time.sleep(CLIENT_KEEP_ALIVE + 1)
        sock.sendall(request)
        second = read_response(sock)

    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")
