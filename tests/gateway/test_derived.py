"""Derived data through the gateways: analysis results need every source subject; aggregates need K attesting ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger.consent import consent_id, sign_revocation
from consentledger.types import RecordKind

from .world import AGGREGATE_K, DISTRICT_STATS, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process


@dataclass(frozen=True)
class Sources:
    """Lab results of two subjects, held by health, each attested by its subject."""

    alice: LocalAccount
    bob: LocalAccount
    alice_lab: str
    bob_lab: str


@pytest.fixture(scope="module")
def sources(consortium: Consortium) -> Sources:
    """Alice's and Bob's lab results, which they attested."""
    alice, bob = Account.create(), Account.create()
    alice_lab = consortium.ingest({"test": "pcr", "result": "positive"}, category=LAB_RESULT, subject=alice.address)
    bob_lab = consortium.ingest({"test": "pcr", "result": "negative"}, category=LAB_RESULT, subject=bob.address)
    consortium.attest(alice, alice_lab)
    consortium.attest(bob, bob_lab)
    return Sources(alice, bob, alice_lab, bob_lab)


def put(consortium: Consortium, body: dict[str, object]) -> dict[str, object]:
    """POST /v1/records at health as health; return the JSON answer (any status)."""
    response = signed(consortium.health, consortium.key(consortium.health), "POST", "/v1/records", body)
    return {"status": response.status_code, **response.json()}


def test_an_aggregate_over_k_subjects_is_shared_without_consent(consortium: Consortium, sources: Sources) -> None:
    """District figures over Alice's and Bob's results register as an aggregate; police read them, unidentified."""
    answer = put(consortium, {"category": DISTRICT_STATS, "payload": {"district": "East", "cases": 2},
                              "derived_from": [sources.alice_lab, sources.bob_lab], "aggregate": True})
    assert answer["status"] == 201, answer
    record = str(answer["record"])
    assert consortium.ledger.record(bytes.fromhex(record[2:])).kind is RecordKind.AGGREGATE

    shared = expect(consortium.access(consortium.police, record), 200)

    assert shared["payload"] == {"district": "East", "cases": 2} and shared["identified"] is False


@pytest.mark.parametrize(("category", "detail"), [
    (DISTRICT_STATS, f"needs at least {AGGREGATE_K} distinct subjects who attested its sources; these sources cover 1"),
    (LAB_RESULT, "allows no anonymous aggregates"),
])
def test_an_aggregate_below_k_is_refused_and_nothing_stored(
    consortium: Consortium, sources: Sources, category: int, detail: str
) -> None:
    """One subject's data is no anonymous aggregate; a category without K allows none: 422, nothing stored."""
    before = consortium.rows(consortium.health)
    payload = {"district": "East", "cases": 1} if category == DISTRICT_STATS else {"test": "x", "result": "y"}

    answer = put(consortium, {"category": category, "payload": payload, "derived_from": [sources.alice_lab],
                              "aggregate": True})

    assert (answer["status"], answer["error"]) == (422, "invalid_payload") and detail in str(answer["detail"])
    assert consortium.rows(consortium.health) == before


@pytest.mark.parametrize("body", [
    {"category": DISTRICT_STATS, "payload": {"cases": 1}, "aggregate": True},
    {"category": DISTRICT_STATS, "payload": {"cases": 1}, "aggregate": True, "subject": "0x" + "11" * 20,
     "derived_from": ["0x" + "22" * 32]},
    {"category": DISTRICT_STATS, "payload": {"cases": 1}},
])
def test_an_aggregate_names_sources_and_no_subject(consortium: Consortium, body: dict[str, object]) -> None:
    """An aggregate without sources or with a subject, or a plain record without a subject: 422."""
    answer = put(consortium, body)

    assert (answer["status"], answer["error"]) == (422, "invalid_payload")
    assert "subject" in str(answer["detail"])


def test_a_derived_result_needs_every_source_subject_and_dies_with_a_revocation(
    consortium: Consortium, sources: Sources
) -> None:
    """An analysis of both results is read with both consents; Alice revoking hers makes it unreadable."""
    answer = put(consortium, {"subject": None, "category": LAB_RESULT, "payload": {"test": "cohort", "result": "1/2"},
                              "derived_from": [sources.alice_lab, sources.bob_lab]})
    assert answer["status"] == 201, answer
    record = str(answer["record"])
    scope = bytes.fromhex(record[2:])
    alices = consortium.grant(sources.alice, consortium.transport, LAB_RESULT, record=scope, max_uses=5)
    expect(consortium.access(consortium.transport, record, [alices]), 403, "rule_violated",
           "AccessLedgerMissingSourceConsent")
    bobs = consortium.grant(sources.bob, consortium.transport, LAB_RESULT, record=scope, max_uses=5)
    assert expect(consortium.access(consortium.transport, record, [alices, bobs]), 200)["payload"]["result"] == "1/2"

    domain = consortium.ledger.domain()
    revocation = sign_revocation(consent_id(alices, domain), sources.alice.key, domain)
    body = {"consent": alices.to_json(), "signature": "0x" + revocation.hex()}
    expect(signed(consortium.transport, sources.alice.key, "POST", "/v1/consents/revoke", body), 200)

    expect(consortium.access(consortium.transport, record, [alices, bobs]), 403, "rule_violated",
           "ConsentRegistryConsentRevoked")
