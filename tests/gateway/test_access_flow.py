"""The access flow over real HTTP: ingest, consent relay, on-chain access, key release, decryption."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from consentledger.consent import Consent, consent_id, sign_consent, sign_revocation
from consentledger.types import Sensitivity

from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process


def test_full_flow_returns_the_payload_once_and_records_the_access_on_chain(consortium: Consortium) -> None:
    """A one-time consent lets transport read the record exactly once; the access is on chain."""
    subject = Account.create()
    payload = {"name": "Lee", "phone": "555-0100", "district": "North"}
    record = consortium.ingest(payload, category=CONTACT_TRACE, subject=subject.address)
    consent = consortium.grant(subject, consortium.transport, CONTACT_TRACE, identified=True)

    answer = expect(consortium.access(consortium.transport, record, [consent]), 200)

    assert answer["payload"] == payload
    assert (answer["record"], answer["seq"], answer["category"]) == (record, 1, CONTACT_TRACE)
    assert answer["custodian"] == consortium.health.address
    (entry,) = consortium.accesses(record)
    assert (entry.seq, entry.requester, entry.purpose) == (1, consortium.transport.address, EPIDEMIC_CONTROL)
    assert entry.consent == consent_id(consent, consortium.ledger.domain())
    assert (entry.block_number, "0x" + entry.tx_hash.hex()) == (answer["block"], answer["tx"])
    assert consortium.ledger.category(CONTACT_TRACE).sensitivity is Sensitivity.ONE_TIME

    expect(consortium.access(consortium.transport, record, [consent]), 403, "rule_violated",
           "ConsentRegistryConsentExhausted")
    assert len(consortium.accesses(record)) == 1
    shown = expect(signed(consortium.health, consortium.key(consortium.health), "GET", f"/v1/records/{record}"), 200)
    assert (shown["record"], shown["state"], shown["subject"]) == (record, "registered", subject.address)
    assert "payload" not in shown and "ciphertext" not in shown


def test_revoked_consent_blocks_the_next_access(consortium: Consortium) -> None:
    """After the subject's signed revocation is relayed, an access under that consent is refused."""
    subject = Account.create()
    record = consortium.ingest({"test": "pcr", "result": "negative"}, category=LAB_RESULT, subject=subject.address)
    consent = consortium.grant(subject, consortium.transport, LAB_RESULT, record=bytes.fromhex(record[2:]), max_uses=5)
    expect(consortium.access(consortium.transport, record, [consent]), 200)
    domain = consortium.ledger.domain()
    revocation = sign_revocation(consent_id(consent, domain), subject.key, domain)

    body = {"consent": consent.to_json(), "signature": "0x" + revocation.hex()}
    answer = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents/revoke", body), 200)

    assert answer == {"consent": "0x" + consent_id(consent, domain).hex(), "status": "revoked"}
    expect(consortium.access(consortium.transport, record, [consent]), 403, "rule_violated",
           "ConsentRegistryConsentRevoked")
    assert [e.seq for e in consortium.accesses(record)] == [1]


def test_identifying_fields_are_withheld_without_an_identified_consent(consortium: Consortium) -> None:
    """A consent with identified=False releases the record without its identifying fields (name, phone)."""
    subject = Account.create()
    record = consortium.ingest({"name": "Kim", "phone": "555-0199", "district": "West"}, category=CONTACT_TRACE,
                               subject=subject.address)
    consent = consortium.grant(subject, consortium.transport, CONTACT_TRACE, identified=False)

    payload = expect(consortium.access(consortium.transport, record, [consent]), 200)["payload"]

    assert payload.get("district") == "West"
    assert "name" not in payload and "phone" not in payload, payload


def test_access_to_a_record_not_on_chain_is_refused(consortium: Consortium) -> None:
    """An access to an unknown record answers 403 naming RecordRegistryUnknownRecord."""
    expect(consortium.access(consortium.transport, "0x" + "22" * 32), 403, "rule_violated",
           "RecordRegistryUnknownRecord")


def test_consent_relay_by_an_outsider_is_refused(consortium: Consortium) -> None:
    """A consent relayed by neither its subject nor an active member answers 403 forbidden."""
    subject, outsider = Account.create(), Account.create()
    consent = Consent.new(subject=subject.address, grantee=consortium.transport.address, category=CONTACT_TRACE,
                          purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 3600)
    signature = sign_consent(consent, subject.key, consortium.ledger.domain())
    body = {"consent": consent.to_json(), "signature": "0x" + signature.hex()}

    expect(signed(consortium.transport, outsider.key, "POST", "/v1/consents", body), 403, "forbidden")


def test_consent_signed_by_someone_else_than_its_subject_is_refused(consortium: Consortium) -> None:
    """A consent signed by another than its subject: 422 naming ConsentRegistryInvalidSignature; nothing sent."""
    subject, forger = Account.create(), Account.create()
    consent = Consent.new(subject=subject.address, grantee=consortium.transport.address, category=CONTACT_TRACE,
                          purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 3600)
    forged = sign_consent(consent, forger.key, consortium.ledger.domain())
    body = {"consent": consent.to_json(), "signature": "0x" + forged.hex()}

    refused = expect(signed(consortium.transport, subject.key, "POST", "/v1/consents", body), 422,
                     "invalid_signature", "ConsentRegistryInvalidSignature")
    assert f"signed by {forger.address}" in refused["detail"]
