"""Signing in to the portal: a challenge the subject's wallet signs (EIP-712 `PortalSignIn`), then a session."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from eth_utils import to_checksum_address

from consentledger.errors import AuthenticationError
from consentledger.gateway.delegation import Delegation
from consentledger.gateway.runtime import Gateway
from consentledger.portal.sign_in import SignIn, sign_in_signer, sign_in_statement, sign_in_typed_data
from consentledger.store.portal_sessions import PortalSession, PortalSessions


def sessions_of(gw: Gateway) -> PortalSessions:
    """Return the gateway's portal challenges and sessions."""
    return PortalSessions(gw.store.engine)


def challenge(gw: Gateway, subject: str) -> dict[str, Any]:
    """Return `{challenge, typed_data}`: a fresh single-use `PortalSignIn` for `subject` to sign with their wallet.

    The sign-in (and the session it opens) lasts `portal_session_ttl` from now; the challenge itself
    must be answered within five minutes.
    """
    store = sessions_of(gw)
    now = int(time.time())
    expires = now + gw.settings.portal_session_ttl
    nonce = store.new_challenge()
    sign_in = SignIn(to_checksum_address(subject), gw.org, sign_in_statement(gw.settings.name, expires), now,
                     expires, nonce)
    store.remember(nonce, sign_in.subject, sign_in.message())
    return {"challenge": "0x" + nonce.hex(), "typed_data": sign_in_typed_data(sign_in, gw.chain_id)}


def open_session(gw: Gateway, challenge_hex: str, signature: bytes) -> tuple[str, PortalSession]:
    """Take the challenge (once) and, if `signature` is its subject's over the sign-in, open a session.

    Returns the cookie token and the session; AuthenticationError for an unknown, used or expired
    challenge, or a signature by anyone else (the challenge is spent either way).
    """
    store = sessions_of(gw)
    pending = store.take(challenge_hex)
    sign_in = SignIn.from_message(pending.sign_in)
    problem = sign_in_signer(sign_in, signature, gw.chain_id).refusal(pending.subject)
    if problem is not None:
        raise AuthenticationError(f"the sign-in is not {pending.subject}'s: {problem}")
    expires = datetime.fromtimestamp(sign_in.expires_at, UTC)
    if expires <= datetime.now(UTC):
        raise AuthenticationError("this sign-in has expired: ask for a new challenge")
    return store.open(pending.subject, pending.sign_in, "0x" + signature.hex(), expires)


def delegation_of(session: PortalSession) -> Delegation:
    """Return the proof this gateway forwards to act for the session's subject at other member gateways."""
    return Delegation(SignIn.from_message(session.sign_in), bytes.fromhex(session.signature[2:]))
