"""Held ports: from the moment a port is picked until its server inherits it, no other process can take it."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from consentledger.errors import PortInUseError
from consentledger.localnet import create_agency
from consentledger.ports import HOST, held_port, hold_port


def bind_as_a_server(port: int) -> socket.socket:
    """Return a socket listening on `port` as servers bind (SO_REUSEADDR, as uvicorn, ganache and anvil do)."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def test_a_held_port_cannot_be_bound_by_another_server_and_refuses_connections() -> None:
    """A held port turns away another server's bind (even with SO_REUSEADDR); connecting to it is refused."""
    with hold_port() as hold:
        port = held_port(hold)
        with pytest.raises(OSError) as taken:
            bind_as_a_server(port)
        assert taken.value.errno == errno.EADDRINUSE
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect((HOST, port))
    bind_as_a_server(port).close()  # released: any process may take it now


def test_a_port_held_again_after_its_server_stopped_keeps_other_servers_off() -> None:
    """Held again by number once its server (whose connections sit in TIME_WAIT) stopped, the port still turns away
    another server's bind; a server inheriting the held socket listens there."""
    with bind_as_a_server(0) as first:
        port = first.getsockname()[1]
        with socket.create_connection((HOST, port)) as client:
            accepted, _ = first.accept()
            accepted.close()  # the server closes first: its side of the connection goes to TIME_WAIT
            client.recv(1)
    with hold_port(port) as hold:
        with pytest.raises(OSError) as taken:
            bind_as_a_server(port)
        assert taken.value.errno == errno.EADDRINUSE
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gateway.serve.inherited does
        hold.listen()
        with socket.create_connection((HOST, port)):
            pass


def test_holding_a_port_a_server_listens_on_raises_port_in_use() -> None:
    """Holding a given port that another process serves raises PortInUseError naming the port."""
    with hold_port() as hold:
        port = held_port(hold)
    with bind_as_a_server(port), pytest.raises(PortInUseError, match=f"port {port} on {HOST} is already in use"):
        hold_port(port)


def test_a_created_agency_holds_its_gateway_port_until_released(tmp_path: Path) -> None:
    """create_agency writes a port into the config and holds it, so the gateway started later still finds it free."""
    agency = create_agency(tmp_path, "clinic", dev_index=7, rpc_url="http://127.0.0.1:1",
                           manifest=tmp_path / "deployment.json")
    assert agency.hold is not None and agency.url == f"http://{HOST}:{agency.listen_port}"
    assert f"port = {agency.listen_port}\n" in agency.created.config.read_text()
    with pytest.raises(OSError) as taken:
        bind_as_a_server(agency.listen_port)
    assert taken.value.errno == errno.EADDRINUSE
    agency.release()
    assert agency.hold is None
    bind_as_a_server(agency.listen_port).close()
