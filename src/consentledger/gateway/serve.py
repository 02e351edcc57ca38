"""Serve a gateway over HTTP on a port claimed before the gateway opens, so a taken port fails first."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

from consentledger.errors import ConfigurationError, PortInUseError

KEEP_ALIVE_SECONDS = 30
"""How long an idle HTTP connection stays open: longer than clients keep theirs (httpx: 5 s, uvicorn's own
default), so the client closes an idle connection first and never sends a request on one the server has just
closed (which it sees as a connection reset)."""

if TYPE_CHECKING:
    from consentledger.gateway.runtime import Gateway


def listen(host: str, port: int) -> socket.socket:
    """Return a socket listening on `host`:`port`; raise PortInUseError if another process holds it."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn binds: a restart may reuse the port while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use: stop what listens there or set another port"
            ) from None
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def inherited(fd: int, port: int) -> socket.socket:
    """Return a listening socket from the bound one inherited as `fd` (see `consentledger.ports`); it must hold `port`.

    The process that started this one picked and held the port, so no other process could take it
    in between. Raises ConfigurationError if `fd` is no socket or is bound to another port.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigurationError(f"--listen-fd {fd} is not an open socket: {exc.strerror or exc}") from None
    bound = sock.getsockname()
    if not isinstance(bound, tuple) or bound[1] != port:
        sock.close()
        raise ConfigurationError(f"--listen-fd {fd} is bound to {bound!r}, not to port {port} of the config")
    # As `listen` binds: the connections it accepts inherit the option, so their TIME_WAIT after a
    # restart does not keep the port from being held and served again.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.listen(2048)
    return sock


def run(gateway: Gateway, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve `gateway` on the listening `sock` (from `listen`) until interrupted, then close both."""
    import uvicorn

    from consentledger.gateway.app import create_app

    try:
        config = uvicorn.Config(create_app(gateway), log_level=log_level, timeout_keep_alive=KEEP_ALIVE_SECONDS)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
