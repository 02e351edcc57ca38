"""The pure access policy: which fields of a record a requester sees."""

from __future__ import annotations

from consentledger.consent import Consent
from consentledger.policy import identified_access, visible_payload

PAYLOAD = {"name": "Lee", "phone": "555", "district": "North"}
IDENTIFYING = ("name", "phone")


def consent(identified: bool) -> Consent:
    """A consent whose only interesting term is `identified`."""
    return Consent(subject="0x" + "11" * 20, grantee="0x" + "22" * 20, category=1, purpose=1,
                   valid_until=2**30, identified=identified)


def test_identifying_fields_are_withheld_without_an_identified_consent() -> None:
    """A consent that does not allow identified access yields only the non-identifying fields."""
    assert visible_payload(PAYLOAD, IDENTIFYING, identified_access([consent(False)])) == {"district": "North"}


def test_identified_consent_shows_every_field() -> None:
    """An identified consent lets the requester see the whole record."""
    assert visible_payload(PAYLOAD, IDENTIFYING, identified_access([consent(True)])) == PAYLOAD


def test_open_access_without_consent_is_never_identified() -> None:
    """OPEN categories are shared without a consent, hence never with identifying fields."""
    assert not identified_access([])
    assert visible_payload(PAYLOAD, IDENTIFYING, identified_access([])) == {"district": "North"}


def test_every_source_subject_must_allow_identification() -> None:
    """For derived data one unidentified source consent withholds identifying fields."""
    assert not identified_access([consent(True), consent(False)])
    assert identified_access([consent(True), consent(True)])
