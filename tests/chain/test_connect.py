"""Connecting to a JSON-RPC endpoint: a failure says in a few words why, naming the URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from consentledger.chain.connect import connect
from consentledger.chain.node import LocalNode
from consentledger.errors import ChainUnavailableError
from consentledger.ports import held_port, hold_port


class NotFound(BaseHTTPRequestHandler):
    """Answers every POST with 404, as a web server that is no JSON-RPC endpoint does."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.fixture()
def web_server() -> Iterator[str]:
    """The URL of a real HTTP server on loopback that is not a JSON-RPC endpoint."""
    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_nothing_listening_is_connection_refused() -> None:
    """A closed port gives exactly "chain unreachable at URL: connection refused"."""
    with hold_port() as closed:  # held, not listening: refused, and no other process can serve it meanwhile
        url = f"http://127.0.0.1:{held_port(closed)}"
        with pytest.raises(ChainUnavailableError) as refused:
            connect(url)
    assert str(refused.value) == f"chain unreachable at {url}: connection refused"


def test_a_listener_that_never_answers_is_no_answer_in_time() -> None:
    """A port that accepts but never replies is reported as such once the timeout passes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ChainUnavailableError) as stalled:
            connect(url, timeout=0.3)
    assert str(stalled.value) == f"chain unreachable at {url}: no answer in time"


def test_a_web_server_that_is_no_rpc_endpoint_names_its_http_status(web_server: str) -> None:
    """An HTTP 404 is reported with its status and a hint, not requests' message about the URL."""
    with pytest.raises(ChainUnavailableError) as wrong:
        connect(web_server)
    assert str(wrong.value) == f"chain unreachable at {web_server}: HTTP 404 Not Found (is it a JSON-RPC endpoint?)"


class ResettingProxy:
    """A TCP proxy to a real node that, once armed, resets (RST) the next connection it gets data on."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.armed = threading.Event()
        self.resets = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self._target)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream, reset_when_armed=True)

    def _pipe(self, source: socket.socket, sink: socket.socket, *, reset_when_armed: bool = False) -> None:
        try:
            while data := source.recv(65536):
                if reset_when_armed and self.armed.is_set():
                    self.armed.clear()
                    self.resets += 1
                    source.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    source.close()  # the request was sent: the client reads a reset, not an answer
                    sink.close()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Stop accepting connections."""
        self._listener.close()


def test_a_read_the_node_resets_mid_request_is_asked_again(ganache: LocalNode) -> None:
    """A connection reset after the request went out (a pooled connection the node dropped) costs a retry, not a 503."""
    proxy = ResettingProxy(ganache.rpc_url)
    try:
        w3 = connect(proxy.url)
        before = w3.eth.block_number
        proxy.armed.set()
        assert w3.eth.block_number >= before
        assert proxy.resets == 1
    finally:
        proxy.close()
