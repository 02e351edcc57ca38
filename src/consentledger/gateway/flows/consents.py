"""Relaying a data subject's signed consent or revocation: only what the contract will take, and only once.

The gateway pays for every transaction it relays, so it sends one only when it will land and is
worth sending: the signature passes the contract's own check (`consent.recover_as_contract`), the
consent is not already in that state on chain (then the answer is its state, 200, and nothing is
sent), and the grantee is an ACTIVE member holding REQUESTER, so a fresh key cannot make the
gateway send transactions for a consent naming itself. A revocation of a consent already granted
is always relayed: withdrawing consent never depends on the grantee's standing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consentledger.consent import Consent, consent_id, consent_signer, revocation_signer
from consentledger.errors import (
    AuthorizationError,
    ContractRevertError,
    InvalidSignatureError,
)
from consentledger.gateway.flows.catalog import check_use
from consentledger.gateway.runtime import Gateway
from consentledger.types import ConsentStatus, MemberStatus, Role

_ALREADY = {"ConsentRegistryAlreadyGranted", "ConsentRegistryConsentRevoked"}
"""The reverts meaning someone else's relay landed between our state check and our transaction."""


@dataclass(frozen=True)
class Relayed:
    """A relay's answer: 201 for a consent granted now, 200 for a revocation or a state already on chain."""

    status_code: int
    body: dict[str, Any]


def relay_grant(gw: Gateway, caller: str, consent: Consent, signature: bytes) -> Relayed:
    """Relay `grantConsent` for `consent`, or return its state if it is already granted or revoked on chain.

    Raises AuthorizationError unless `caller` is the subject or an active member, or unless the
    grantee is an ACTIVE REQUESTER; InvalidSignatureError for a signature the contract would refuse;
    PayloadValidationError (as `flows.catalog.check_use`) for a category or purpose no access could use: the
    contract takes any category and purpose in a consent (it checks them at each access), so without this a
    consent no access could ever use would land on chain.
    """
    domain = gw.ledger.domain()
    name = "0x" + consent_id(consent, domain).hex()
    _may_relay(gw, caller, consent.subject)
    problem = consent_signer(consent, signature, domain).refusal(consent.subject)
    if problem is not None:
        raise InvalidSignatureError(name, "signature", problem)
    known = _on_chain(gw, name)
    if known is not None:
        return known
    check_use(gw, consent.category, consent.purpose)
    grantee_may_receive(gw, consent.grantee)
    try:
        gw.ledger.grant_consent(gw.sender, consent, signature, step=gw.fault)
    except ContractRevertError as exc:
        return _raced(gw, name, exc)
    return Relayed(201, {"consent": name, "status": "granted"})


def relay_revocation(gw: Gateway, caller: str, consent: Consent, signature: bytes) -> Relayed:
    """Relay `revokeConsentBySignature` for `consent`, or return its state if it is already revoked on chain.

    A consent never granted on chain (withdrawn before relay) is revoked only for an ACTIVE REQUESTER
    grantee, as its grant would be. Raises as `relay_grant`.
    """
    domain = gw.ledger.domain()
    cid = consent_id(consent, domain)
    name = "0x" + cid.hex()
    _may_relay(gw, caller, consent.subject)
    problem = revocation_signer(cid, signature, domain).refusal(consent.subject)
    if problem is not None:
        raise InvalidSignatureError(name, "revocation", problem)
    status, uses = gw.ledger.consent_state(cid)
    if status is ConsentStatus.REVOKED:
        return _state(name, status, uses)
    if status is ConsentStatus.NONE:
        grantee_may_receive(gw, consent.grantee)
    try:
        gw.ledger.revoke_consent_by_signature(gw.sender, consent, signature)
    except ContractRevertError as exc:
        return _raced(gw, name, exc)
    return Relayed(200, {"consent": name, "status": "revoked"})


def _may_relay(gw: Gateway, caller: str, subject: str) -> None:
    if caller.lower() == subject.lower():
        return
    if gw.members.get(caller).status is not MemberStatus.ACTIVE:
        raise AuthorizationError("a consent is relayed for its subject or by an active member")


def grantee_may_receive(gw: Gateway, grantee: str) -> None:
    """Return if `grantee` is an ACTIVE member holding REQUESTER; AuthorizationError naming its standing otherwise."""
    member = gw.members.get(grantee)
    if member.status is not MemberStatus.ACTIVE or Role.REQUESTER not in member.roles:
        standing = "not a member" if member.status is MemberStatus.NONE else member.status.name.lower()
        if member.status is MemberStatus.ACTIVE:
            standing = "without the requester role"
        raise AuthorizationError(
            f"this gateway relays consents only to an active requester member; grantee {grantee} is {standing}"
        )


def _on_chain(gw: Gateway, name: str) -> Relayed | None:
    status, uses = gw.ledger.consent_state(bytes.fromhex(name[2:]))
    return None if status is ConsentStatus.NONE else _state(name, status, uses)


def _raced(gw: Gateway, name: str, exc: ContractRevertError) -> Relayed:
    if exc.rule not in _ALREADY:
        raise exc
    status, uses = gw.ledger.consent_state(bytes.fromhex(name[2:]))
    return _state(name, status, uses)


def _state(name: str, status: ConsentStatus, uses: int) -> Relayed:
    return Relayed(200, {"consent": name, "status": status.name.lower(), "already_on_chain": True, "uses": uses})
