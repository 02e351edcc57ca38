"""A gateway process keeps its port: held from its agency's creation until it serves, and again while it is stopped."""

from __future__ import annotations

import errno
import socket

import httpx
import pytest

from consentledger.ports import HOST

from .world import Consortium

pytestmark = pytest.mark.process


def server_bind_error(port: int) -> int | None:
    """Return the errno another server gets binding `port` (SO_REUSEADDR, then listen), or None if it could."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError as exc:
            return exc.errno
    return None


def test_a_stopped_gateway_holds_its_port_and_restarts_on_it(consortium: Consortium) -> None:
    """While police's gateway is stopped no other server can take its port and connections are refused; started
    again, the process inherits the port and answers there as police."""
    police = consortium.police
    assert server_bind_error(police.listen_port) == errno.EADDRINUSE  # the running gateway listens there
    police.stop()
    try:
        assert server_bind_error(police.listen_port) == errno.EADDRINUSE  # held: a stranger cannot take it
        with pytest.raises(httpx.ConnectError):
            httpx.get(police.url + "/v1/health", timeout=5, trust_env=False)
    finally:
        police.start()
    answer = httpx.get(police.url + "/v1/health", timeout=30, trust_env=False)
    assert answer.status_code == 200 and answer.json()["org"] == police.address
    assert police.hold is None  # the process owns the port now
