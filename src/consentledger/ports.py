"""Loopback ports held from the moment they are picked until the process that serves them takes them over.

`free_port` (pick a port, close it, hand over its number) leaves a window in which any other
process may bind the port: another test's server, another pytest worker, or an outgoing
connection given it as its ephemeral port. A held port is a bound socket (not listening) that
keeps everyone else off the port; the serving process inherits it (`gateway serve --listen-fd`)
and listens on it. Nothing connects to a held port: connections are refused, as on a free one.
"""

from __future__ import annotations

import errno
import socket

from consentledger.errors import ConfigurationError, PortInUseError

HOST = "127.0.0.1"


def hold_port(port: int = 0, *, host: str = HOST) -> socket.socket:
    """Return a socket bound, not listening, to `host`:`port` (a free port if 0) that keeps other servers off it.

    The socket ends up without SO_REUSEADDR, so no other socket can listen on the port, even with
    that option. A given port is bound with it first, as `gateway serve` binds, so a port whose last
    server's connections sit in TIME_WAIT can be held again; the server inheriting the socket sets
    it again before it listens (`gateway.serve.inherited`). The socket is inheritable (`pass_fds`).
    Raises PortInUseError if `port` is taken.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Checked against others' binds and listens from now on: without it, none can share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use") from None
        raise ConfigurationError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def held_port(sock: socket.socket) -> int:
    """Return the port number a socket from `hold_port` holds."""
    port: int = sock.getsockname()[1]
    return port
