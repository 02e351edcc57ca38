"""Portal sign-ins in the store: a challenge is taken once and within five minutes, sessions expire and end, and
neither a challenge nor a token is stored in the clear; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from consentledger.errors import AuthenticationError
from consentledger.store.portal_sessions import CHALLENGE_SECONDS, PortalSessions
from consentledger.store.tables import portal_challenges, portal_sessions

from .conftest import SUBJECT

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SIGN_IN = {"subject": SUBJECT, "issuedAt": "1796029200"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_a_challenge_is_taken_once_and_not_after_five_minutes(engine: Engine) -> None:
    """The first take returns the subject and message; a second take, or one past 5 minutes, is refused."""
    clock = Clock()
    sessions = PortalSessions(engine, clock=clock)
    once, late = sessions.new_challenge(), sessions.new_challenge()
    sessions.remember(once, SUBJECT, SIGN_IN)
    sessions.remember(late, SUBJECT, SIGN_IN)

    taken = sessions.take("0x" + once.hex().upper())
    assert (taken.subject, taken.sign_in) == (SUBJECT, SIGN_IN)
    with pytest.raises(AuthenticationError, match="already used"):
        sessions.take("0x" + once.hex())
    clock.now += timedelta(seconds=CHALLENGE_SECONDS)
    with pytest.raises(AuthenticationError, match="expired"):
        sessions.take("0x" + late.hex())


def test_a_session_is_found_by_its_token_until_it_expires_or_ends_and_only_hashes_are_stored(engine: Engine) -> None:
    """lookup finds the session (with the signed sign-in) by its token; after expiry or end it is refused."""
    clock = Clock()
    sessions = PortalSessions(engine, clock=clock)
    challenge = sessions.new_challenge()
    sessions.remember(challenge, SUBJECT, SIGN_IN)
    token, _ = sessions.open(SUBJECT, SIGN_IN, "0x" + "ab" * 65, START + timedelta(hours=1))
    other, _ = sessions.open(SUBJECT, SIGN_IN, "0x" + "cd" * 65, START + timedelta(hours=2))

    found = sessions.lookup(token)
    assert (found.subject, found.sign_in, found.signature) == (SUBJECT, SIGN_IN, "0x" + "ab" * 65)
    with engine.connect() as conn:
        stored = " ".join(str(v) for table in (portal_sessions, portal_challenges)
                          for row in conn.execute(select(table)) for v in row)
    assert token not in stored and challenge.hex() not in stored

    assert sessions.end(other) is True and sessions.end(other) is False
    with pytest.raises(AuthenticationError):
        sessions.lookup(other)
    clock.now += timedelta(hours=1)
    with pytest.raises(AuthenticationError):
        sessions.lookup(token)
    assert sessions.purge() == 1
