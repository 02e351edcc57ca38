"""Short-lived sessions for the audit web page: a one-time link, exchanged once for a browser cookie.

A signed API request creates a session and gets a link token back; opening the link in a browser
claims it (once) and sets a cookie carrying a second, fresh token. Only SHA-256 hashes of either
token are stored, so a copy of the database opens no page; both expire together.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, delete, select, update

from consentledger.errors import AuthenticationError
from consentledger.store.tables import page_sessions

TOKEN_BYTES = 32


class PageView(StrEnum):
    """What a page session may show: every access (an auditor) or one data subject's own."""

    AUDIT = "audit"
    SUBJECT = "subject"


@dataclass(frozen=True)
class PageSession:
    """A page session: who asked for it, what it shows, until when."""

    viewer: str
    view: PageView
    expires_at: datetime


@dataclass(frozen=True)
class IssuedLink:
    """A new session's one-time link token (shown once, never stored) and the session it opens."""

    token: str
    session: PageSession


def _utcnow() -> datetime:
    return datetime.now(UTC)


def token_digest(token: str) -> str:
    """Return the hex SHA-256 a token is stored as (never the token itself)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class PageSessions:
    """Issue, claim and look up audit-page sessions in the gateway's database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock

    def issue(self, viewer: str, view: PageView, ttl_seconds: int) -> IssuedLink:
        """Create a session for `viewer` lasting `ttl_seconds`; return its one-time link token."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        session = PageSession(viewer, view, now + timedelta(seconds=ttl_seconds))
        with self.engine.begin() as conn:
            conn.execute(page_sessions.insert().values(
                link_hash=token_digest(token), cookie_hash=None, viewer=viewer, view=view.value,
                expires_at=session.expires_at, created_at=now,
            ))
        return IssuedLink(token, session)

    def claim(self, link_token: str) -> tuple[str, PageSession]:
        """Exchange an unclaimed, unexpired link token for a cookie token; AuthenticationError otherwise.

        The exchange is one conditional UPDATE, so of two browsers opening the same link only one wins.
        """
        cookie = secrets.token_urlsafe(TOKEN_BYTES)
        link_hash, now = token_digest(link_token), self._clock()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(page_sessions)
                .where(page_sessions.c.link_hash == link_hash, page_sessions.c.cookie_hash.is_(None),
                       page_sessions.c.expires_at > now)
                .values(cookie_hash=token_digest(cookie))
            ).rowcount
            row = conn.execute(select(page_sessions).where(page_sessions.c.link_hash == link_hash)).first()
        if claimed != 1 or row is None:
            raise AuthenticationError("this audit page link is unknown, expired or already opened: ask for a new one")
        return cookie, PageSession(row.viewer, PageView(row.view), row.expires_at)

    def lookup(self, cookie_token: str) -> PageSession:
        """Return the live session a cookie token belongs to; AuthenticationError if none."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(page_sessions).where(page_sessions.c.cookie_hash == token_digest(cookie_token),
                                            page_sessions.c.expires_at > self._clock())
            ).first()
        if row is None:
            raise AuthenticationError("the audit page session is missing or expired: run `consentledger audit open`")
        return PageSession(row.viewer, PageView(row.view), row.expires_at)

    def purge(self, now: datetime | None = None) -> int:
        """Delete expired sessions; return how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(page_sessions).where(page_sessions.c.expires_at <= (now or self._clock())))
        return result.rowcount
