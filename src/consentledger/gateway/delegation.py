"""Acting for a data subject at another gateway: the `X-CL-On-Behalf-Of` proof a portal gateway forwards.

A subject signed in at gateway G's portal signed a `PortalSignIn` naming G (`portal.sign_in`),
whose statement lets G list and answer their consent requests and ask for their erasure at the
other member gateways until it expires. G sends that message and signature along with requests it
signs with its own org key. A peer takes the request as the subject's only on `/v1/subjects/me/...`
paths and only when the org that signed the request is the gateway the subject named, is an ACTIVE
member, the sign-in is the subject's own signature and is valid now, for at most a day.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

from consentledger.errors import AuthenticationError, AuthorizationError
from consentledger.gateway.membership import MembershipCache
from consentledger.portal.sign_in import SignIn, sign_in_signer
from consentledger.types import MemberStatus

log = logging.getLogger(__name__)

HEADER_ON_BEHALF_OF = "X-CL-On-Behalf-Of"
SUBJECT_PATHS = "/v1/subjects/me/"
"""The only paths a delegated request may take: a subject's own requests, consents, records and erasure."""
MAX_DELEGATION_SECONDS = 86400
MAX_HEADER = 8192


@dataclass(frozen=True)
class Delegation:
    """A subject's signed sign-in, as one gateway forwards it to act for them at another."""

    sign_in: SignIn
    signature: bytes

    def header(self) -> dict[str, str]:
        """Return the HTTP header carrying this delegation (base64url of its JSON)."""
        document = {"sign_in": self.sign_in.message(), "signature": "0x" + self.signature.hex()}
        encoded = base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        return {HEADER_ON_BEHALF_OF: encoded.rstrip("=")}

    @classmethod
    def from_header(cls, value: str) -> Delegation:
        """Parse the header; AuthenticationError naming what is malformed."""
        if len(value) > MAX_HEADER:
            raise AuthenticationError(f"{HEADER_ON_BEHALF_OF} is over {MAX_HEADER} characters")
        try:
            document: Any = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            signature = bytes.fromhex(str(document["signature"]).removeprefix("0x"))
        except (ValueError, binascii.Error, KeyError, TypeError):
            raise AuthenticationError(f"{HEADER_ON_BEHALF_OF} is not base64url JSON "
                                      '{"sign_in": ..., "signature": "0x..."}') from None
        return cls(SignIn.from_message(document.get("sign_in")), signature)


def delegated_subject(
    value: str, *, path: str, signer: str, members: MembershipCache, chain_id: int, now: int
) -> str:
    """Return the subject a request signed by gateway `signer` acts for; refuse a proof that does not hold.

    AuthorizationError for a path outside `/v1/subjects/me/` or a signer that is not an ACTIVE member;
    AuthenticationError for a sign-in naming another gateway, not signed by its subject, not valid now,
    or valid for more than a day.
    """
    if not path.startswith(SUBJECT_PATHS):
        raise AuthorizationError(f"{HEADER_ON_BEHALF_OF} is accepted only on {SUBJECT_PATHS}... paths")
    delegation = Delegation.from_header(value)
    sign_in = delegation.sign_in
    if sign_in.gateway.lower() != signer.lower():
        raise AuthenticationError(f"the subject signed in at {sign_in.gateway}, not at {signer} which signed this")
    member = members.get(signer)
    if member.status is not MemberStatus.ACTIVE:
        raise AuthorizationError(f"{signer} may not act for a subject: it is not an active member")
    if sign_in.expires_at - sign_in.issued_at > MAX_DELEGATION_SECONDS:
        raise AuthenticationError(f"the sign-in is valid for more than {MAX_DELEGATION_SECONDS} s")
    if not sign_in.issued_at <= now < sign_in.expires_at:
        raise AuthenticationError("the subject's sign-in is not valid now (expired or not yet issued)")
    problem = sign_in_signer(sign_in, delegation.signature, chain_id).refusal(sign_in.subject)
    if problem is not None:
        raise AuthenticationError(f"the sign-in is not the subject's: {problem}")
    log.info("%s by gateway %s on behalf of data subject %s", path, signer, sign_in.subject)
    return sign_in.subject
