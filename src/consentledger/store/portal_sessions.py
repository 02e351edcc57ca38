"""Subject portal sign-ins: single-use challenges, and the sessions a signed challenge opens.

A challenge is a fresh 32-byte value inside a `PortalSignIn` message (`consentledger.portal.sign_in`);
it may be answered once, within five minutes. The answer's signature opens a session whose cookie
carries a random token; only SHA-256 hashes of challenges and tokens are stored, so a copy of the
database opens no session. The session keeps the signed message and its signature: the subject's
proof that this gateway may act for them at the other member gateways until the message expires.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from consentledger.errors import AuthenticationError
from consentledger.store.sessions import TOKEN_BYTES, token_digest
from consentledger.store.tables import portal_challenges, portal_sessions

CHALLENGE_SECONDS = 300
"""How long a sign-in challenge may be answered."""


@dataclass(frozen=True)
class PortalSession:
    """A signed-in subject: who, until when, and the sign-in message and signature that prove it."""

    subject: str
    expires_at: datetime
    sign_in: dict[str, Any]
    signature: str


@dataclass(frozen=True)
class PendingSignIn:
    """A challenge being answered: the subject it was issued to and the message they were asked to sign."""

    subject: str
    sign_in: dict[str, Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PortalSessions:
    """Issue and take challenges, open, look up and end portal sessions in the gateway's database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self._clock = clock

    def new_challenge(self) -> bytes:
        """Return 32 fresh random bytes to sign (stored only once `remember` is called)."""
        return secrets.token_bytes(32)

    def remember(self, challenge: bytes, subject: str, sign_in: dict[str, Any]) -> datetime:
        """Store `challenge` for `subject` with the message it sits in; return when it stops being accepted."""
        now = self._clock()
        expires = now + timedelta(seconds=CHALLENGE_SECONDS)
        with self.engine.begin() as conn:
            conn.execute(delete(portal_challenges).where(portal_challenges.c.expires_at <= now))
            conn.execute(portal_challenges.insert().values(
                challenge_hash=token_digest("0x" + challenge.hex()), subject=subject, sign_in=sign_in,
                expires_at=expires, created_at=now,
            ))
        return expires

    def take(self, challenge: str) -> PendingSignIn:
        """Consume an unexpired challenge (once: it is deleted); AuthenticationError if unknown, used or expired.

        Two answers racing for one challenge: the DELETE of one of them removes the row, the other's none.
        """
        key, now = token_digest(challenge.lower()), self._clock()
        c = portal_challenges.c
        with self.engine.begin() as conn:
            row = conn.execute(select(portal_challenges).where(c.challenge_hash == key, c.expires_at > now)).first()
            taken = conn.execute(delete(portal_challenges).where(c.challenge_hash == key)).rowcount
        if row is None or taken != 1:
            raise AuthenticationError("this sign-in challenge is unknown, expired or already used: ask for a new one")
        return PendingSignIn(row.subject, dict(row.sign_in))

    def open(
        self, subject: str, sign_in: dict[str, Any], signature: str, expires_at: datetime
    ) -> tuple[str, PortalSession]:
        """Open a session for `subject` until `expires_at`; return its cookie token (never stored) and the session."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = PortalSession(subject, expires_at, sign_in, signature)
        with self.engine.begin() as conn:
            conn.execute(portal_sessions.insert().values(
                token_hash=token_digest(token), subject=subject, sign_in=sign_in, signature=signature,
                expires_at=expires_at, created_at=self._clock(),
            ))
        return token, session

    def lookup(self, token: str) -> PortalSession:
        """Return the live session of a cookie token; AuthenticationError if there is none."""
        s = portal_sessions.c
        with self.engine.connect() as conn:
            row = conn.execute(select(portal_sessions).where(s.token_hash == token_digest(token),
                                                             s.expires_at > self._clock())).first()
        if row is None:
            raise AuthenticationError("not signed in to the portal (or the session ended): sign in with your wallet")
        return PortalSession(row.subject, row.expires_at, dict(row.sign_in), row.signature)

    def end(self, token: str) -> bool:
        """Delete the session of a cookie token; return whether there was one."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(portal_sessions).where(portal_sessions.c.token_hash == token_digest(token)))
                        .rowcount)

    def purge(self, now: datetime | None = None) -> int:
        """Delete expired challenges and sessions; return how many sessions went."""
        moment = now or self._clock()
        with self.engine.begin() as conn:
            conn.execute(delete(portal_challenges).where(portal_challenges.c.expires_at <= moment))
            return conn.execute(delete(portal_sessions).where(portal_sessions.c.expires_at <= moment)).rowcount
