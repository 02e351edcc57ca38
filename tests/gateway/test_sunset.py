"""Emergency sunset: once governance ends a purpose, records collected only for it are shredded and tombstoned."""

from __future__ import annotations

import pytest
from eth_account import Account

from consentledger import governance
from consentledger.types import Sensitivity, TombstoneReason

from .lifecycle import access_for, eventually, get_record, grant_for, tombstones_on_chain
from .world import EPIDEMIC_CONTROL, Consortium, expect

pytestmark = pytest.mark.process

FLOOD_RELIEF = 41
SHELTER_LIST, EVACUEE_NEEDS = 31, 32
"""Shelter lists serve flood relief only; evacuee needs serve flood relief and epidemic control."""
MONTH = 30 * 86400


def test_sunset_shreds_records_whose_purposes_all_ended_and_leaves_the_others(consortium: Consortium) -> None:
    """After flood relief's sunset the shelter list (flood relief only) is tombstoned SUNSET; evacuee needs stay,
    and an unused consent for flood relief no longer works on them (DataCatalogPurposeSunset) while one for
    epidemic control does."""
    ledger, transport = consortium.ledger, consortium.transport
    consortium.govern(governance.add_purpose(FLOOD_RELIEF, "flood-relief"))
    consortium.govern(governance.add_category(SHELTER_LIST, "shelter-list", Sensitivity.ONE_TIME, MONTH,
                                              ("district", "shelter"), (), [FLOOD_RELIEF]))
    consortium.govern(governance.add_category(EVACUEE_NEEDS, "evacuee-needs", Sensitivity.ONE_TIME, MONTH,
                                              ("district", "needs"), (), [FLOOD_RELIEF, EPIDEMIC_CONTROL]))
    subject = Account.create()
    shelter = consortium.ingest({"district": "North", "shelter": "school 4"}, category=SHELTER_LIST,
                                subject=subject.address)
    needs = consortium.ingest({"district": "North", "needs": "insulin"}, category=EVACUEE_NEEDS,
                              subject=subject.address)
    for_flood = grant_for(consortium, subject, transport, EVACUEE_NEEDS, FLOOD_RELIEF)
    for_epidemic = grant_for(consortium, subject, transport, EVACUEE_NEEDS, EPIDEMIC_CONTROL)

    now = ledger.w3.eth.get_block("latest")["timestamp"]
    consortium.govern(governance.set_purpose_sunset(FLOOD_RELIEF, now))  # mined in a block at or past `now`

    gone = eventually(lambda: get_record(consortium, shelter), lambda a: a.status_code == 410, what="shelter swept")
    assert expect(gone, 410, "record_destroyed")["reason"] == "sunset"
    eventually(lambda: tombstones_on_chain(ledger, shelter), lambda t: t == [TombstoneReason.SUNSET],
               what="shelter tombstoned")
    assert expect(get_record(consortium, needs), 200)["state"] == "registered"
    assert tombstones_on_chain(ledger, needs) == []
    expect(access_for(consortium, transport, needs, FLOOD_RELIEF, [for_flood]), 403, "rule_violated",
           "DataCatalogPurposeSunset")
    assert expect(access_for(consortium, transport, needs, EPIDEMIC_CONTROL, [for_epidemic]), 200)["payload"] == {
        "district": "North", "needs": "insulin"}
