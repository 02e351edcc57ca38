"""Relaying consents and revocations: only for active requester grantees, only signatures the contract takes,
and a relay of what is already on chain answers its state instead of a refusal."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger import governance
from consentledger.consent import SECP256K1_N, Consent, consent_id, sign_consent, sign_revocation
from consentledger.localnet import Agency
from consentledger.types import ConsentStatus, Sensitivity

from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process


def _terms(subject: LocalAccount, grantee: str) -> Consent:
    return Consent.new(subject=subject.address, grantee=grantee, category=CONTACT_TRACE, purpose=EPIDEMIC_CONTROL,
                       valid_until=int(time.time()) + 3600)


def _signed(consortium: Consortium, subject: LocalAccount, consent: Consent) -> dict[str, Any]:
    signature = sign_consent(consent, subject.key, consortium.ledger.domain())
    return {"consent": consent.to_json(), "signature": "0x" + signature.hex()}


def _revocation(consortium: Consortium, subject: LocalAccount, consent: Consent) -> dict[str, Any]:
    domain = consortium.ledger.domain()
    signature = sign_revocation(consent_id(consent, domain), subject.key, domain)
    return {"consent": consent.to_json(), "signature": "0x" + signature.hex()}


def _state(consortium: Consortium, consent: Consent) -> tuple[ConsentStatus, int]:
    return consortium.ledger.consent_state(consent_id(consent, consortium.ledger.domain()))


def _nonce(consortium: Consortium, agency: Agency) -> int:
    return int(consortium.ledger.w3.eth.get_transaction_count(agency.address))


def test_a_fresh_key_cannot_make_a_gateway_relay_a_consent_to_itself(consortium: Consortium) -> None:
    """A self-consent naming the fresh key as grantee: 403 naming the rule; the gateway sends no transaction."""
    fresh = Account.create()
    consent = _terms(fresh, fresh.address)
    sent_before = _nonce(consortium, consortium.transport)

    refused = expect(signed(consortium.transport, fresh.key, "POST", "/v1/consents",
                            _signed(consortium, fresh, consent)), 403, "forbidden")

    assert "only to an active requester member" in refused["detail"] and "not a member" in refused["detail"]
    assert _state(consortium, consent) == (ConsentStatus.NONE, 0)
    assert _nonce(consortium, consortium.transport) == sent_before


def test_a_consent_to_a_member_without_the_requester_role_is_not_relayed(consortium: Consortium) -> None:
    """Health is an active custodian, not a requester: a consent naming it is refused, 403."""
    subject = Account.create()
    consent = _terms(subject, consortium.health.address)

    refused = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents",
                            _signed(consortium, subject, consent)), 403, "forbidden")

    assert "without the requester role" in refused["detail"]
    assert _state(consortium, consent) == (ConsentStatus.NONE, 0)


def test_a_high_s_consent_signature_is_refused_before_any_transaction(consortium: Consortium) -> None:
    """The malleated twin of a good signature: 422 invalid_signature naming the consent; nothing on chain."""
    subject = Account.create()
    consent = _terms(subject, consortium.transport.address)
    body = _signed(consortium, subject, consent)
    raw = bytes.fromhex(body["signature"][2:])
    high = raw[:32] + (SECP256K1_N - int.from_bytes(raw[32:64], "big")).to_bytes(32, "big") + bytes([55 - raw[64]])
    body["signature"] = "0x" + high.hex()
    sent_before = _nonce(consortium, consortium.transport)

    refused = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents", body), 422,
                     "invalid_signature", "ConsentRegistryInvalidSignature")

    assert refused["consent"] == "0x" + consent_id(consent, consortium.ledger.domain()).hex()
    assert _state(consortium, consent) == (ConsentStatus.NONE, 0)
    assert _nonce(consortium, consortium.transport) == sent_before


def test_a_consent_already_relayed_elsewhere_answers_its_state(consortium: Consortium) -> None:
    """Granted through transport's gateway, then relayed again through police's: 200 granted, already on chain."""
    subject = Account.create()
    consent = _terms(subject, consortium.transport.address)
    body = _signed(consortium, subject, consent)
    granted = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents", body), 201)
    sent_before = _nonce(consortium, consortium.police)

    again = expect(signed(consortium.police, subject.key, "POST", "/v1/consents", body), 200)

    assert again == {"consent": granted["consent"], "status": "granted", "already_on_chain": True, "uses": 0}
    assert _nonce(consortium, consortium.police) == sent_before


def test_a_revocation_already_relayed_answers_revoked_and_a_revoked_consent_is_not_granted_again(
    consortium: Consortium
) -> None:
    """A second relay of a revocation: 200 revoked, already on chain; relaying the revoked consent's grant: the same."""
    subject = Account.create()
    consent = _terms(subject, consortium.transport.address)
    expect(signed(consortium.transport, subject.key, "POST", "/v1/consents", _signed(consortium, subject, consent)),
           201)
    revocation = _revocation(consortium, subject, consent)
    first = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents/revoke", revocation), 200)
    assert first == {"consent": "0x" + consent_id(consent, consortium.ledger.domain()).hex(), "status": "revoked"}

    again = expect(signed(consortium.police, subject.key, "POST", "/v1/consents/revoke", revocation), 200)
    regrant = expect(signed(consortium.police, subject.key, "POST", "/v1/consents",
                            _signed(consortium, subject, consent)), 200)

    assert again == regrant == {**first, "already_on_chain": True, "uses": 0}
    assert _state(consortium, consent) == (ConsentStatus.REVOKED, 0)


def test_a_revocation_with_a_bad_v_is_refused_and_the_consent_stays_granted(consortium: Consortium) -> None:
    """A revocation whose v is 0/1 (eth_account would recover it, the contract would not): 422, still granted."""
    subject = Account.create()
    consent = _terms(subject, consortium.transport.address)
    expect(signed(consortium.transport, subject.key, "POST", "/v1/consents", _signed(consortium, subject, consent)),
           201)
    revocation = _revocation(consortium, subject, consent)
    raw = bytes.fromhex(revocation["signature"][2:])
    revocation["signature"] = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()

    refused = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents/revoke", revocation), 422,
                     "invalid_signature")

    assert "its v is" in refused["problem"]
    assert _state(consortium, consent) == (ConsentStatus.GRANTED, 0)


ENDED, ENDED_LIST = 43, 44
"""A purpose added already past its sunset, and a category allowing only it (no other test uses these ids)."""


def test_a_consent_the_catalog_refuses_is_not_relayed(consortium: Consortium) -> None:
    """An unknown category (99) or purpose (77), a purpose the category does not allow, or one past its sunset at
    the latest block: 422 (off the positive list); each names the problem, and the gateway sends no transaction."""
    consortium.govern(governance.add_purpose(ENDED, "ended-emergency", sunset=1))
    subject = Account.create()
    grantee = consortium.transport.address
    cases = [
        (dict(category=99), 422, "invalid_payload", "category 99 is not in the catalog"),
        (dict(purpose=77), 422, "invalid_payload", "purpose 77 is not in the catalog"),
        (dict(purpose=ENDED), 422, "invalid_payload",
         f"category {CONTACT_TRACE} (contact-trace) may not be used for purpose {ENDED} (ended-emergency)"),
    ]
    consortium.govern(governance.add_category(ENDED_LIST, "ended-list", Sensitivity.ONE_TIME, 86400, ("district",),
                                              (), [ENDED]))
    cases.append((dict(category=ENDED_LIST, purpose=ENDED), 422, "invalid_payload",
                  f"purpose {ENDED} (ended-emergency) ended at 1970-01-01T00:00:01+00:00: no consent for it"))
    sent_before = _nonce(consortium, consortium.transport)
    for change, status, error, detail in cases:
        terms: dict[str, Any] = {"category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL, **change}
        consent = Consent.new(subject=subject.address, grantee=grantee, valid_until=int(time.time()) + 3600, **terms)
        refused = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents",
                                _signed(consortium, subject, consent)), status, error)
        assert detail in refused["detail"], refused
        assert _state(consortium, consent) == (ConsentStatus.NONE, 0)
    assert _nonce(consortium, consortium.transport) == sent_before
