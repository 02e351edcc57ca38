"""The consent-request store: one answer per request (the second is refused), none after expiry; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from consentledger.errors import ConsentRequestAnsweredError, ConsentRequestExpiredError, NotFoundError
from consentledger.store.consent_requests import ConsentRequest, ConsentRequests, RequestState

from .conftest import CUSTODIAN, SUBJECT

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _file(requests: ConsentRequests, **terms: object) -> ConsentRequest:
    fields: dict[str, object] = {
        "requester": CUSTODIAN, "client": None, "subject": SUBJECT, "category": 1, "purpose": 1, "record": None,
        "valid_until": 2_000_000_000, "max_uses": 3, "identified": True, "reason": "tracing a case",
        "expires_at": START + timedelta(hours=1), **terms,
    }
    return requests.file(**fields)  # type: ignore[arg-type]


def test_a_request_is_answered_once_and_a_second_answer_names_the_first(engine: Engine) -> None:
    """Granted with its consent id; a denial afterwards is ConsentRequestAnsweredError saying `granted already`."""
    requests = ConsentRequests(engine, clock=Clock())
    filed = _file(requests)

    granted = requests.answer(filed, RequestState.GRANTED, consent={"nonce": "18446744073709551615"},
                              consent_id="0x" + "11" * 32)

    assert (granted.state, granted.consent_id, granted.answered_at) == (RequestState.GRANTED, "0x" + "11" * 32, START)
    assert granted.consent == {"nonce": "18446744073709551615"}
    with pytest.raises(ConsentRequestAnsweredError, match="granted already"):
        requests.answer(filed, RequestState.DENIED)  # the stale copy still says requested: the UPDATE decides


def test_a_request_past_its_expiry_cannot_be_answered(engine: Engine) -> None:
    """One second past `expires_at` the answer is ConsentRequestExpiredError; the request stays unanswered."""
    clock = Clock()
    requests = ConsentRequests(engine, clock=clock)
    filed = _file(requests)
    clock.now = filed.expires_at + timedelta(seconds=1)

    with pytest.raises(ConsentRequestExpiredError, match="expired unanswered"):
        requests.answer(filed, RequestState.DENIED)
    assert requests.get(filed.id).state is RequestState.REQUESTED


def test_a_grant_whose_relay_failed_is_reopened(engine: Engine) -> None:
    """`reopen` undoes the grant of that consent only, so the subject may answer again."""
    requests = ConsentRequests(engine, clock=Clock())
    filed = _file(requests)
    requests.answer(filed, RequestState.GRANTED, consent={}, consent_id="0x" + "22" * 32)

    requests.reopen(filed.id, "0x" + "33" * 32)  # another consent: nothing changes
    assert requests.get(filed.id).state is RequestState.GRANTED
    requests.reopen(filed.id, "0x" + "22" * 32)

    reopened = requests.get(filed.id)
    assert (reopened.state, reopened.consent, reopened.consent_id) == (RequestState.REQUESTED, None, None)


def test_listing_filters_by_subject_and_state_newest_first(engine: Engine) -> None:
    """Two requests to the subject, one to another: the subject's listing holds its two, newest first."""
    clock = Clock()
    requests = ConsentRequests(engine, clock=clock)
    first = _file(requests)
    clock.now += timedelta(minutes=1)
    second = _file(requests)
    _file(requests, subject=CUSTODIAN)
    requests.answer(first, RequestState.DENIED)

    assert [r.id for r in requests.listed(subject=SUBJECT)] == [second.id, first.id]
    assert [r.id for r in requests.listed(subject=SUBJECT, state=RequestState.REQUESTED)] == [second.id]
    with pytest.raises(NotFoundError, match="no consent request"):
        requests.get("0x" + "00" * 16)
