"""The callbacks owed to requesters, on both backends: written with the answer, owed once on expiry, claimed by one
caller at a time, never due after a success or the last failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from consentledger.store.consent_requests import ConsentRequest, ConsentRequests, RequestState
from consentledger.store.request_callbacks import RequestCallbacks

from .conftest import CUSTODIAN, SUBJECT

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9/hooks"
LEASE = timedelta(seconds=30)


def _file(engine: Engine, *, url: str | None = URL, expires_in: timedelta = timedelta(hours=1)) -> ConsentRequest:
    return ConsentRequests(engine, clock=lambda: START).file(
        requester=CUSTODIAN, client=None, subject=SUBJECT, category=1, purpose=1, record=None,
        valid_until=2_000_000_000, max_uses=1, identified=False, reason="a case", expires_at=START + expires_in,
        callback_url=url)


def test_an_answer_owes_its_callback_in_the_same_transaction_and_a_reopened_grant_owes_none(engine: Engine) -> None:
    """Denied: a `denied` callback due at once; a grant undone by `reopen` leaves no callback; no URL, none."""
    requests, callbacks = ConsentRequests(engine, clock=lambda: START), RequestCallbacks(engine)
    denied, reopened, silent = _file(engine), _file(engine), _file(engine, url=None)
    requests.answer(denied, RequestState.DENIED)
    requests.answer(reopened, RequestState.GRANTED, consent={}, consent_id="0x" + "22" * 32)
    requests.reopen(reopened.id, "0x" + "22" * 32)
    requests.answer(silent, RequestState.DENIED)

    owed = callbacks.of_requests([denied.id, reopened.id, silent.id])

    assert list(owed) == [denied.id]
    assert (owed[denied.id].state, owed[denied.id].attempts, owed[denied.id].next_at) == ("denied", 0, START)


def test_a_lapsed_request_owes_one_expired_callback_however_often_it_is_looked_for(engine: Engine) -> None:
    """Past its expiry an unanswered request with a URL is owed `expired` once; a live or answered one is not."""
    callbacks = RequestCallbacks(engine)
    lapsed, live = _file(engine, expires_in=timedelta(seconds=5)), _file(engine)
    answered = _file(engine, expires_in=timedelta(seconds=5))
    ConsentRequests(engine, clock=lambda: START).answer(answered, RequestState.DENIED)
    later = START + timedelta(seconds=5)

    assert callbacks.queue_expired(later) == 1
    assert callbacks.queue_expired(later + timedelta(minutes=1)) == 0

    owed = callbacks.of_requests([lapsed.id, live.id, answered.id])
    assert {k: v.state for k, v in owed.items()} == {lapsed.id: "expired", answered.id: "denied"}


def test_a_due_callback_is_claimed_once_and_after_a_success_or_the_last_failure_is_never_due(engine: Engine) -> None:
    """A second claim before the lease ends gets nothing; a failure is due at its retry time; a success or a
    failure without retry leaves it due never again."""
    requests, callbacks = ConsentRequests(engine, clock=lambda: START), RequestCallbacks(engine)
    first, second = _file(engine), _file(engine)
    requests.answer(first, RequestState.DENIED)
    requests.answer(second, RequestState.DENIED)

    claimed = callbacks.claim_due(START, LEASE, 10)
    assert sorted(c.request_id for c in claimed) == sorted([first.id, second.id])
    assert callbacks.claim_due(START + timedelta(seconds=1), LEASE, 10) == []
    by_id = {c.request_id: c for c in claimed}
    callbacks.delivered(by_id[first.id], START + timedelta(seconds=1))
    callbacks.failed(by_id[second.id], "HTTP 503", START + timedelta(seconds=2))

    retried = callbacks.claim_due(START + timedelta(seconds=2), LEASE, 10)
    assert [(c.request_id, c.attempts, c.last_error) for c in retried] == [(second.id, 1, "HTTP 503")]
    callbacks.failed(retried[0], "HTTP 500", None)
    assert callbacks.claim_due(START + timedelta(days=1), LEASE, 10) == []
    shown = callbacks.of_requests([first.id, second.id])
    assert shown[first.id].as_json() == {"state": "denied", "attempts": 1, "last_error": None,
                                         "delivered_at": "2026-12-01T09:00:01+00:00"}
    assert shown[second.id].as_json() == {"state": "denied", "attempts": 2, "last_error": "HTTP 500",
                                          "delivered_at": None}
