"""Anonymisation in transmission and sensitivity tiers, end to end through real gateways."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_account import Account

from consentledger.consent import Consent

from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, LAB_RESULT, Agency, Consortium, expect, signed

pytestmark = pytest.mark.process

LEE = {"name": "Lee", "phone": "555-0101", "district": "North"}


def access(consortium: Consortium, requester: Agency, record: str, consents: list[Consent],
           withhold: str = "pseudonymise") -> httpx.Response:
    """Ask `requester`'s gateway for `record`, choosing how identifying fields are withheld."""
    body: dict[str, Any] = {"record": record, "purpose": EPIDEMIC_CONTROL, "consents": [c.to_json() for c in consents],
                            "withhold": withhold}
    return signed(requester, consortium.key(requester), "POST", "/v1/access", body)


def contact_of(consortium: Consortium, payload: dict[str, str], requester: Agency, *, identified: bool = False
               ) -> tuple[str, Consent]:
    """Collect a contact trace of a fresh subject and return it with a consent for `requester`."""
    subject = Account.create()
    record = consortium.ingest(payload, category=CONTACT_TRACE, subject=subject.address)
    return record, consortium.grant(subject, requester, CONTACT_TRACE, identified=identified)


def test_pseudonyms_replace_identifying_fields_stable_per_requester(consortium: Consortium) -> None:
    """Two records of Lee give transport the same pseudonyms, police other ones; no real value travels."""
    transport, police = consortium.transport, consortium.police
    seen = []
    for requester in (transport, transport, police):
        record, consent = contact_of(consortium, LEE, requester)
        answer = expect(access(consortium, requester, record, [consent]), 200)
        assert answer["identified"] is False and answer["payload"]["district"] == "North"
        assert consortium.accesses(record)[0].identified is False
        seen.append((answer["payload"]["name"], answer["payload"]["phone"]))

    assert all(value.startswith("pseudonym:") for pair in seen for value in pair)
    assert seen[0] == seen[1] and seen[2] != seen[0]
    assert not {"Lee", "555-0101"} & {value for pair in seen for value in pair}


def test_identifying_fields_are_removed_by_default(consortium: Consortium) -> None:
    """Without pseudonyms asked for, name and phone are simply absent."""
    record, consent = contact_of(consortium, LEE, consortium.transport)

    answer = expect(access(consortium, consortium.transport, record, [consent], withhold="remove"), 200)

    assert answer["payload"] == {"district": "North"}


def test_an_identified_consent_releases_every_field_and_the_chain_says_so(consortium: Consortium) -> None:
    """identified=True in the consent: the entry is recorded identified and the custodian sends everything."""
    record, consent = contact_of(consortium, LEE, consortium.transport, identified=True)

    answer = expect(access(consortium, consortium.transport, record, [consent]), 200)

    assert answer["payload"] == LEE and answer["identified"] is True
    assert consortium.accesses(record)[0].identified is True


def test_an_unknown_withholding_mode_is_refused(consortium: Consortium) -> None:
    """`withhold` takes remove or pseudonymise; anything else is 422 before the chain is touched."""
    record, consent = contact_of(consortium, LEE, consortium.transport)

    answer = expect(access(consortium, consortium.transport, record, [consent], withhold="blur"), 422,
                    "invalid_payload")

    assert "withhold" in answer["detail"] and consortium.accesses(record) == []


def test_a_protected_record_is_released_for_immediate_use_and_kept_nowhere(consortium: Consortium) -> None:
    """A lab result needs a record-scoped consent; its release says "immediate", is not cacheable, and the
    requester's gateway keeps no trace of it."""
    subject = Account.create()
    result = {"test": "pcr", "result": "positive-7f3a"}
    record = consortium.ingest(result, category=LAB_RESULT, subject=subject.address)
    wide = consortium.grant(subject, consortium.transport, LAB_RESULT)
    expect(access(consortium, consortium.transport, record, [wide]), 403, "rule_violated",
           "ConsentRegistryRecordScopeRequired")
    scoped = consortium.grant(subject, consortium.transport, LAB_RESULT, record=bytes.fromhex(record[2:]))
    before = consortium.rows(consortium.transport)

    response = access(consortium, consortium.transport, record, [scoped])

    answer = expect(response, 200)
    assert answer["payload"] == result and answer["use"] == "immediate"
    assert response.headers["cache-control"] == "no-store"
    assert consortium.rows(consortium.transport) == before
    kept = b"".join(p.read_bytes() for p in consortium.transport.directory.glob("agency.db*"))
    assert b"positive-7f3a" not in kept
