"""The positive list at `GET /v1/catalog`, and `consent grant` refusing terms off it before anything is signed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from consentledger import governance
from consentledger.client import GatewayClient
from consentledger.consent import Consent
from consentledger.errors import PayloadValidationError
from consentledger.types import Sensitivity

from .world import CONTACT_FIELDS, CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, LAB_RESULT, Consortium, expect

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
ENDED, LATER, SHORT_LIST = 45, 46, 47
"""A purpose past its sunset since 1970, one ending in a year, and a category allowing both (ids no other test
uses)."""
YEAR = 365 * 86400
PASSWORD = "a subject's passphrase"


@pytest.fixture(scope="module")
def later_sunset(consortium: Consortium) -> int:
    """Add ENDED, LATER (its sunset, returned, a year after the latest block) and SHORT_LIST to the catalog."""
    sunset = consortium.ledger.latest_block_time() + YEAR
    consortium.govern(governance.add_purpose(ENDED, "ended-emergency", sunset=1))
    consortium.govern(governance.add_purpose(LATER, "winter-shelter", sunset=sunset))
    consortium.govern(governance.add_category(SHORT_LIST, "shelter-roll", Sensitivity.ONE_TIME, 86400,
                                              ("district",), (), [ENDED, LATER]))
    return sunset


def _catalog(consortium: Consortium) -> dict[str, Any]:
    return expect(httpx.get(consortium.transport.url + "/v1/catalog", trust_env=False, timeout=30), 200)


def test_the_catalog_endpoint_answers_the_positive_list_the_consortium_set_up(
    consortium: Consortium, later_sunset: int
) -> None:
    """Unsigned; every category and purpose on chain, the world's as created, sunsets unix and ISO, `active` by the
    latest block's time."""
    answer = _catalog(consortium)

    ledger = consortium.ledger
    assert [c["id"] for c in answer["categories"]] == list(ledger.category_ids())
    assert [p["id"] for p in answer["purposes"]] == list(ledger.purpose_ids())
    assert answer["block"] <= ledger.block_number()
    assert answer["block_time"] == ledger.w3.eth.get_block(answer["block"])["timestamp"]
    categories = {c["id"]: c for c in answer["categories"]}
    month = 30 * 86400
    assert categories[CONTACT_TRACE] == {
        "id": CONTACT_TRACE, "name": "contact-trace", "sensitivity": "one-time", "retention": month,
        "min_aggregate_subjects": 0, "fields": list(CONTACT_FIELDS), "identifying_fields": ["name", "phone"],
        "allowed_purposes": [EPIDEMIC_CONTROL],
    }
    assert (categories[LAB_RESULT]["sensitivity"], categories[LAB_RESULT]["fields"]) == ("protected",
                                                                                         ["test", "result"])
    assert (categories[DISTRICT_STATS]["sensitivity"], categories[DISTRICT_STATS]["min_aggregate_subjects"]) == (
        "open", 2)
    assert categories[SHORT_LIST]["allowed_purposes"] == [ENDED, LATER]
    purposes = {p["id"]: p for p in answer["purposes"]}
    assert purposes[EPIDEMIC_CONTROL] == {"id": EPIDEMIC_CONTROL, "name": "epidemic-control", "sunset": None,
                                          "sunset_at": None, "active": True}
    assert purposes[ENDED] == {"id": ENDED, "name": "ended-emergency", "sunset": 1,
                               "sunset_at": "1970-01-01T00:00:01+00:00", "active": False}
    assert purposes[LATER]["sunset"] == later_sunset and purposes[LATER]["active"] is True
    assert purposes[LATER]["sunset_at"] == time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(later_sunset))


def _granted_to(consortium: Consortium, subject: str) -> list[Any]:
    """Return the ConsentGranted events naming `subject`, since the ledger was deployed."""
    events = consortium.ledger.access.events.ConsentGranted().get_logs(
        from_block=consortium.ledger.deployment.deploy_block, argument_filters={"subject": subject})
    return list(events)


REFUSALS = [
    pytest.param({"category": 99}, "error: category 99 is not in the catalog: no consent can be given for it; the "
                 "catalog's categories: CATEGORIES", id="unknown-category"),
    pytest.param({"purpose": 77}, "error: purpose 77 is not in the catalog: no consent can be given for it; purposes "
                 f"category {CONTACT_TRACE} (contact-trace) allows now: {EPIDEMIC_CONTROL} epidemic-control",
                 id="unknown-purpose"),
    pytest.param({"purpose": LATER}, f"error: category {CONTACT_TRACE} (contact-trace) may not be used for purpose "
                 f"{LATER} (winter-shelter); purposes category {CONTACT_TRACE} (contact-trace) allows now: "
                 f"{EPIDEMIC_CONTROL} epidemic-control", id="purpose-not-allowed"),
    pytest.param({"category": SHORT_LIST, "purpose": ENDED}, f"error: purpose {ENDED} (ended-emergency) ended at "
                 f"1970-01-01T00:00:01+00:00: no consent for it; purposes category {SHORT_LIST} (shelter-roll) allows "
                 f"now: {LATER} winter-shelter", id="purpose-past-its-sunset"),
]


@pytest.mark.parametrize(("terms", "line"), REFUSALS)
def test_consent_grant_off_the_catalog_exits_13_with_one_line_before_anything_is_signed(
    consortium: Consortium, later_sunset: int, tmp_path: Path, terms: dict[str, int], line: str
) -> None:
    """The subject's CLI refuses in one line naming what the catalog allows; no consent file, no relay, no consent
    on chain (the gateway's signer sent nothing)."""
    subject = Account.create()
    keystore = tmp_path / "subject.json"
    keystore.write_text(json.dumps(Account.encrypt(subject.key, PASSWORD, iterations=2**10)))
    out = tmp_path / "consent.json"
    chosen = {"category": CONTACT_TRACE, "purpose": EPIDEMIC_CONTROL, **terms}
    transport = consortium.transport
    sent_before = consortium.ledger.w3.eth.get_transaction_count(transport.address)
    # Every category on chain, the world's first (other modules of the package add theirs).
    listing = ", ".join(f"{c.id} {c.name}" for c in consortium.ledger.categories())
    assert listing.startswith(f"{CONTACT_TRACE} contact-trace, {LAB_RESULT} lab-result, "
                              f"{DISTRICT_STATS} district-stats")

    result = subprocess.run(
        [CLI, "consent", "grant", "--gateway", transport.url, "--grantee", transport.address,
         "--category", str(chosen["category"]), "--purpose", str(chosen["purpose"]),
         "--subject-keystore", str(keystore), "--out", str(out)],
        env={**os.environ, "CONSENTLEDGER_SUBJECT_PASSWORD": PASSWORD}, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == PayloadValidationError.exit_code == 13, result.stderr
    assert result.stderr.strip() == line.replace("CATEGORIES", listing) and result.stdout == ""
    assert not out.exists()
    assert _granted_to(consortium, subject.address) == []
    assert consortium.ledger.w3.eth.get_transaction_count(transport.address) == sent_before


def test_the_same_terms_on_the_catalog_are_granted_by_the_cli(consortium: Consortium, later_sunset: int,
                                                              tmp_path: Path) -> None:
    """The control: the short list for the purpose still in use is signed, relayed and on chain."""
    subject = Account.create()
    keystore = tmp_path / "subject.json"
    keystore.write_text(json.dumps(Account.encrypt(subject.key, PASSWORD, iterations=2**10)))
    result = subprocess.run(
        [CLI, "consent", "grant", "--gateway", consortium.transport.url, "--grantee", consortium.transport.address,
         "--category", str(SHORT_LIST), "--purpose", str(LATER), "--subject-keystore", str(keystore)],
        env={**os.environ, "CONSENTLEDGER_SUBJECT_PASSWORD": PASSWORD}, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "granted"
    assert len(_granted_to(consortium, subject.address)) == 1


def test_the_client_refuses_to_sign_a_consent_for_a_purpose_past_its_sunset(consortium: Consortium,
                                                                          later_sunset: int) -> None:
    """`sign_and_grant` checks the catalog first: PayloadValidationError naming the sunset, nothing relayed."""
    subject = Account.create()
    with GatewayClient(consortium.transport.url, subject) as client:
        consent = Consent.new(subject=subject.address, grantee=consortium.transport.address, category=SHORT_LIST,
                              purpose=ENDED, valid_until=int(time.time()) + 3600)
        with pytest.raises(PayloadValidationError, match=r"purpose 45 \(ended-emergency\) ended at 1970"):
            client.sign_and_grant(consent)

    assert _granted_to(consortium, subject.address) == []
