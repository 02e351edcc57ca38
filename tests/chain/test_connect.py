"""Connecting to a JSON-RPC endpoint: a failure says in a few words why, naming the URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from consentledger.chain.connect import connect
from consentledger.errors import ChainUnavailableError


def closed_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


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
    url = f"http://127.0.0.1:{closed_port()}"
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
