"""Access under a statutory mandate over real HTTP: recorded on chain without consent, released while in force."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_utils import keccak

from consentledger import governance
from consentledger.types import LegalBasis

from .test_portal_api import overview, sign_in
from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect, signed

pytestmark = pytest.mark.process

LAW_URI = "https://laws.example/health-act/art-12"
CONTACT = {"name": "Ines", "phone": "555-0111", "district": "South"}


def grant(consortium: Consortium, institution: str, *, identified: bool = True) -> int:
    """Have governance grant `institution` a mandate for contact traces in epidemic control; return its id."""
    consortium.govern(governance.grant_mandate(institution, EPIDEMIC_CONTROL, [CONTACT_TRACE],
                                               int(time.time()) + 86400, keccak(text="health act, art. 12"), LAW_URI,
                                               identified=identified))
    return int(consortium.ledger.consortium.functions.mandateCount().call())


def under_mandate(consortium: Consortium, record: str, mandate: int, *, purpose: int = EPIDEMIC_CONTROL,
                  **body: Any) -> dict[str, Any]:
    """Return the body of transport's access to `record` under `mandate`."""
    return {"record": record, "purpose": purpose, "mandate": mandate, **body}


def access(consortium: Consortium, body: dict[str, Any], path: str = "/v1/access") -> Any:
    """Send `body` to transport's gateway at `path`, signed with transport's key."""
    return signed(consortium.transport, consortium.key(consortium.transport), "POST", path, body)


@pytest.fixture(scope="module")
def mandate(consortium: Consortium) -> int:
    """A mandate of transport's for contact traces in epidemic control, identified, valid for a day."""
    return grant(consortium, consortium.transport.address)


def test_an_access_under_a_mandate_in_scope_releases_the_record_without_consent(
    consortium: Consortium, mandate: int
) -> None:
    """Transport reads a contact trace under its mandate: the payload identified, the chain's entry under mandate."""
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=Account.create().address)

    answer = expect(access(consortium, under_mandate(consortium, record, mandate)), 200)

    assert answer["payload"] == CONTACT
    assert (answer["basis"], answer["mandate"], answer["identified"]) == ("mandate", mandate, True)
    assert "override" not in answer
    (entry,) = consortium.accesses(record)
    assert (entry.basis, entry.mandate, entry.requester) == (LegalBasis.MANDATE, mandate, consortium.transport.address)
    assert (entry.seq, entry.block_number) == (answer["seq"], answer["block"])


def test_an_unidentified_mandate_releases_no_identifying_fields(consortium: Consortium) -> None:
    """A mandate without identification: the custodian withholds name and phone, as for an unidentified consent."""
    unidentified = grant(consortium, consortium.transport.address, identified=False)
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=Account.create().address)

    answer = expect(access(consortium, under_mandate(consortium, record, unidentified)), 200)

    assert (answer["identified"], answer["payload"]) == (False, {"district": "South"})


@pytest.mark.parametrize("outside", ["other-purpose", "other-category", "other-agency", "revoked", "unknown"])
def test_an_access_outside_the_mandate_is_refused_on_chain_naming_the_rule(
    consortium: Consortium, mandate: int, outside: str
) -> None:
    """Another purpose, another category, another agency's mandate, a revoked or unknown one: 403 with the rule."""
    category = LAB_RESULT if outside == "other-category" else CONTACT_TRACE
    payload = {"test": "pcr", "result": "negative"} if category == LAB_RESULT else CONTACT
    record = consortium.ingest(payload, category=category, subject=Account.create().address)
    used, purpose, requester = mandate, EPIDEMIC_CONTROL, consortium.transport
    if outside == "other-purpose":
        purpose = EPIDEMIC_CONTROL + 1
    elif outside == "other-agency":
        requester = consortium.police
    elif outside == "revoked":
        used = grant(consortium, consortium.transport.address)
        consortium.govern(governance.revoke_mandate(used))
    elif outside == "unknown":
        used = 10**6
    rule = {"other-purpose": "LegalBasesMandateWrongPurpose", "other-category": "LegalBasesMandateWrongCategory",
            "other-agency": "LegalBasesMandateNotHolder", "revoked": "LegalBasesMandateRevoked",
            "unknown": "LegalBasesUnknownMandate"}[outside]

    response = signed(requester, consortium.key(requester), "POST", "/v1/access",
                      {"record": record, "purpose": purpose, "mandate": used})

    expect(response, 403, "rule_violated", rule)
    assert consortium.accesses(record) == []


def test_a_release_is_refused_once_governance_revoked_the_mandate(consortium: Consortium) -> None:
    """An access recorded under a mandate, the mandate revoked, then its key asked again straight from the
    custodian: 403 release_refused, reason mandate_revoked (the chain view followed MandateRevoked)."""
    revocable = grant(consortium, consortium.transport.address)
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=Account.create().address)
    answer = expect(access(consortium, under_mandate(consortium, record, revocable)), 200)
    path, key = f"/v1/keys/{record}/{answer['seq']}", consortium.key(consortium.transport)
    expect(signed(consortium.health, key, "POST", path, {"block": answer["block"]}), 200)

    consortium.govern(governance.revoke_mandate(revocable))

    refused = expect(signed(consortium.health, key, "POST", path, {"block": answer["block"]}), 403, "release_refused")
    assert refused["reason"] == "mandate_revoked" and f"mandate {revocable}" in refused["detail"], refused


def test_a_key_request_for_a_mandate_access_with_consents_is_refused(consortium: Consortium, mandate: int) -> None:
    """Consents sent for an access made under a mandate are not the ones it presented: consents_mismatch."""
    subject = Account.create()
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=subject.address)
    consent = consortium.grant(subject, consortium.transport, CONTACT_TRACE)
    answer = expect(access(consortium, under_mandate(consortium, record, mandate)), 200)

    body = {"block": answer["block"], "consents": [consent.to_json()]}
    refused = expect(signed(consortium.health, consortium.key(consortium.transport), "POST",
                            f"/v1/keys/{record}/{answer['seq']}", body), 403, "release_refused")

    assert refused["reason"] == "consents_mismatch", refused


def test_an_access_under_a_mandate_is_resumed_by_record_and_seq(consortium: Consortium, mandate: int) -> None:
    """POST /v1/access/resume {record, seq} answers a mandate access again, recording nothing anew."""
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=Account.create().address)
    first = expect(access(consortium, under_mandate(consortium, record, mandate)), 200)

    again = expect(access(consortium, {"record": record, "seq": first["seq"]}, "/v1/access/resume"), 200)

    assert (again["payload"], again["basis"], again["mandate"], again["seq"]) == (CONTACT, "mandate", mandate,
                                                                                  first["seq"])
    assert len(consortium.accesses(record)) == 1


@pytest.mark.parametrize("body, path, said", [
    ({"consents": [], "mandate": 1}, "/v1/access", "one legal basis"),
    ({"mandate": 1, "override": {"justification": "flood"}}, "/v1/access", "one legal basis"),
    ({"override": {"justification": ""}}, "/v1/access", "override.justification"),
    ({"override": {"justification": "x" * 4097}}, "/v1/access", "override.justification"),
    ({"mandate": 0}, "/v1/access", "mandate"),
    ({"items": [{"record": "0x" + "11" * 32, "purpose": 1, "mandate": 1}]}, "/v1/access/batch", "asked alone"),
    ({"seq": 1, "mandate": 1}, "/v1/access/resume", "names no mandate or override"),
], ids=["consents-and-mandate", "mandate-and-override", "empty-justification", "long-justification", "mandate-0",
        "batch", "resume"])
def test_a_body_with_no_single_legal_basis_is_a_422(
    consortium: Consortium, body: dict[str, Any], path: str, said: str
) -> None:
    """Two bases, an empty or too long justification, a mandate in a batch or a resume: 422 naming the problem."""
    full = {"record": "0x" + "11" * 32, "purpose": EPIDEMIC_CONTROL, **body} if "items" not in body else body

    refused = expect(access(consortium, full, path), 422, "invalid_payload")

    assert said in refused["detail"], refused


def test_the_subjects_portal_says_the_access_was_under_a_statutory_mandate(
    consortium: Consortium, mandate: int
) -> None:
    """Signed in at health's portal, the subject reads the access under the mandate with its legal text's address."""
    subject = Account.create()
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=subject.address)
    expect(access(consortium, under_mandate(consortium, record, mandate)), 200)

    with httpx.Client(base_url=consortium.health.url, trust_env=False, timeout=60) as browser:
        sign_in(browser, subject)
        [held] = [r for r in overview(browser)["records"] if r["id"] == record]

    [seen] = held["accesses"]
    assert seen["sentence"].startswith("transport looked at your Contact trace on "), seen
    assert seen["sentence"].endswith(f"; they saw your name and phone; accessed under statutory mandate {mandate} "
                                     f"({LAW_URI})."), seen
