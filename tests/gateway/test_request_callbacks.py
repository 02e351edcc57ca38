"""Consent-request callbacks are durable: retried with backoff until the receiver answers 2xx (at most
`callback_attempts` times), delivered once, sent on expiry too, and how they went shows in the request's JSON."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from consentledger.client import GatewayClient
from consentledger.client_requests import grant_request
from consentledger.signing import RequestSignature, verify_request
from consentledger.store.tables import request_callbacks

from .conftest import CALLBACKS_SOON
from .world import CHAIN_ID, CONTACT_TRACE, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

PATIENCE = 30.0
"""Seconds any awaited callback or state may take (each poll returns as soon as it holds)."""


class Receiver:
    """A requester's endpoint in this process: answers 503 to its first `fail_first` calls, 204 after; keeps each.

    With `up=False` its port is bound but not listening (connections are refused) until `come_up()`.
    """

    def __init__(self, *, fail_first: int = 0, status: int = 503, up: bool = True) -> None:
        self.calls: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        self.answered: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server spelling)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = status if len(receiver.answered) < fail_first else 204
                receiver.answered.append(code)
                receiver.calls.put((self.path, dict(self.headers.items()), body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server spelling)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/consent"
        self._serving: threading.Thread | None = None
        if up:
            self.come_up()

    def come_up(self) -> None:
        """Start listening and serving."""
        self.server.server_activate()
        self._serving = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._serving.start()

    def close(self) -> None:
        if self._serving is not None:
            self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Make receivers that are closed after the test."""
    made: list[Receiver] = []

    def make(**options: Any) -> Receiver:
        made.append(Receiver(**options))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def _file(consortium: Consortium, subject: str, url: str, **terms: Any) -> dict[str, Any]:
    body = {"subject": subject, "category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL,
            "valid_until": int(time.time()) + 3600, "reason": "Tracing contacts of a case", "callback_url": url,
            **terms}
    transport = consortium.transport
    return expect(signed(transport, consortium.key(transport), "POST", "/v1/consent-requests", body), 201)


def _poll_until(consortium: Consortium, request_id: str, holds: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Return the request as its requester polls it, once `holds` is true of it (fail after PATIENCE)."""
    transport = consortium.transport
    deadline = time.monotonic() + PATIENCE
    while True:
        shown = expect(signed(transport, consortium.key(transport), "GET", f"/v1/consent-requests/{request_id}"), 200)
        if holds(shown):
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def _delivered(shown: dict[str, Any]) -> bool:
    return shown["callback"] is not None and shown["callback"]["delivered_at"] is not None


def _received(consortium: Consortium, call: tuple[str, dict[str, str], bytes]) -> dict[str, Any]:
    """Return the body of a callback after checking it is signed by transport for `/hooks/consent`."""
    path, headers, body = call
    signer = verify_request(RequestSignature.from_headers(headers), chain_id=CHAIN_ID,
                            audience=consortium.transport.address, method="POST", path=path, body=body,
                            now=int(time.time()))
    assert (path, signer) == ("/hooks/consent", consortium.transport.address)
    data: dict[str, Any] = json.loads(body)
    return data


def _row(consortium: Consortium, request_id: str) -> dict[str, Any]:
    with consortium.store(consortium.transport).engine.connect() as conn:
        rows = conn.execute(select(request_callbacks).where(request_callbacks.c.request_id == request_id)
                            ).mappings().all()
    assert len(rows) == 1, rows
    return dict(rows[0])


def test_a_denial_refused_twice_by_the_receiver_is_delivered_on_the_third_attempt_and_never_again(
    consortium: Consortium, receivers: Callable[..., Receiver]
) -> None:
    """503, 503, 204: three signed POSTs of the denied request; the JSON shows 3 attempts, no error; never due
    again."""
    receiver = receivers(fail_first=2)
    erin = Account.create()
    filed = _file(consortium, erin.address, receiver.url)
    assert filed["callback"] is None  # nothing owed before an answer

    denied = expect(signed(consortium.transport, erin.key, "POST",
                           f"/v1/subjects/me/consent-requests/{filed['id']}/deny", {}), 200)
    shown = _poll_until(consortium, filed["id"], _delivered)

    assert denied["callback"]["state"] == "denied"
    assert (shown["callback"]["state"], shown["callback"]["attempts"], shown["callback"]["last_error"]) == (
        "denied", 3, None)
    assert receiver.answered == [503, 503, 204]
    bodies = [_received(consortium, receiver.calls.get_nowait()) for _ in range(3)]
    assert [(b["id"], b["state"]) for b in bodies] == [(filed["id"], "denied")] * 3
    row = _row(consortium, filed["id"])
    assert row["next_at"] is None and row["delivered_at"] is not None


def test_a_receiver_that_keeps_failing_is_tried_callback_attempts_times_and_the_error_shows(
    consortium: Consortium, receivers: Callable[..., Receiver]
) -> None:
    """Always 500: exactly `callback_attempts` POSTs, then none; the JSON says attempts 5, last_error HTTP 500."""
    receiver = receivers(fail_first=10**6, status=500)
    fay = Account.create()
    filed = _file(consortium, fay.address, receiver.url)
    expect(signed(consortium.transport, fay.key, "POST", f"/v1/subjects/me/consent-requests/{filed['id']}/deny", {}),
           200)

    bound = CALLBACKS_SOON["callback_attempts"]
    shown = _poll_until(consortium, filed["id"], lambda r: r["callback"]["attempts"] == bound)

    assert shown["callback"] == {"state": "denied", "attempts": bound, "last_error": "HTTP 500", "delivered_at": None}
    assert _row(consortium, filed["id"])["next_at"] is None  # given up: never due again
    assert receiver.answered == [500] * bound


def test_a_grant_whose_receiver_is_down_is_delivered_once_it_comes_back(
    consortium: Consortium, receivers: Callable[..., Receiver]
) -> None:
    """Connections refused: the failures show in the JSON; once listening, one POST announcing `granted`."""
    receiver = receivers(up=False)
    gil = Account.create()
    filed = _file(consortium, gil.address, receiver.url)
    with GatewayClient(consortium.transport.url, gil) as client:
        grant_request(client, filed["id"])

    failing = _poll_until(consortium, filed["id"], lambda r: r["callback"]["attempts"] >= 2)
    assert failing["callback"]["delivered_at"] is None
    assert "refused" in failing["callback"]["last_error"].lower(), failing["callback"]
    receiver.come_up()
    shown = _poll_until(consortium, filed["id"], _delivered)

    assert shown["callback"]["state"] == "granted" and shown["callback"]["last_error"] is None
    assert receiver.answered == [204]
    body = _received(consortium, receiver.calls.get_nowait())
    assert (body["id"], body["state"], body["consent_id"]) == (filed["id"], "granted", shown["consent_id"])


def test_an_unanswered_request_is_called_back_expired_once_it_lapses(
    consortium: Consortium, receivers: Callable[..., Receiver]
) -> None:
    """The upkeep loop finds the lapsed request and POSTs it once, `expired`; the JSON shows it delivered."""
    receiver = receivers()
    hana = Account.create()
    filed = _file(consortium, hana.address, receiver.url, expires_in=1)

    body = _received(consortium, receiver.calls.get(timeout=PATIENCE))
    shown = _poll_until(consortium, filed["id"], _delivered)

    assert datetime.now(UTC) >= datetime.fromisoformat(filed["expires_at"])
    assert (body["id"], body["state"]) == (filed["id"], "expired")
    assert shown["state"] == "expired"
    assert (shown["callback"]["state"], shown["callback"]["attempts"], shown["callback"]["last_error"]) == (
        "expired", 1, None)
    assert receiver.answered == [204]
