"""The audit API every gateway serves: listings and verification for auditors, own histories for subjects."""

from __future__ import annotations

import time

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select

from consentledger.audit.tables import accesses
from consentledger.chain.history import fold
from consentledger.client import GatewayClient
from consentledger.errors import GatewayError
from consentledger.types import AccessEntry

from .conftest import REFUSED_RULES, Audited
from .world import DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

INDEX_PATIENCE = 60.0
"""Seconds to wait for the background indexer: it runs each upkeep cycle, which a loaded machine stretches."""


def on_chain(consortium: Consortium, *records: str) -> list[tuple[str, int, str, int]]:
    """Return (record, seq, tx hash, block) of the records' AccessRecorded entries, in chain order."""
    entries: list[tuple[str, AccessEntry]] = [(r, e) for r in records for e in consortium.accesses(r)]
    entries.sort(key=lambda item: (item[1].block_number, item[1].seq))
    return [(r, e.seq, "0x" + e.tx_hash.hex(), e.block_number) for r, e in entries]


def located(items: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """Return (record, seq, tx hash, block) of listed accesses."""
    return [(i["record"], i["seq"], i["tx_hash"], i["block"]) for i in items]


def test_auditor_lists_accesses_filtered_by_subject_record_org_and_purpose(
    consortium: Consortium, audited: Audited, auditor: GatewayClient
) -> None:
    """Each filter narrows the listing; every item carries the tx hash and block the chain holds."""
    alices = auditor.audit_accesses(subject=audited.alice.address)["items"]
    assert located(alices) == on_chain(consortium, audited.lab, audited.stats)
    assert {i["subject"] for i in alices} == {audited.alice.address}
    assert {i["requester_name"] for i in alices} == {"transport", "police"}

    by_record = auditor.audit_accesses(record=audited.lab)["items"]
    assert [(i["record"], i["seq"]) for i in by_record] == [(audited.lab, 1), (audited.lab, 2)]

    police = consortium.police.address
    by_org = auditor.audit_accesses(org=police)["items"]
    assert {(i["record"], i["seq"]) for i in by_org} >= {(audited.stats, 1), (audited.contact, 1)}
    assert all(police in (i["requester"], i["custodian"]) for i in by_org)
    assert located(auditor.audit_accesses(subject=audited.alice.address, org=police)["items"]) == on_chain(
        consortium, audited.stats
    )

    assert located(auditor.audit_accesses(subject=audited.bob.address, purpose=EPIDEMIC_CONTROL)["items"]) == (
        on_chain(consortium, audited.contact)
    )
    assert auditor.audit_accesses(subject=audited.bob.address, purpose="epidemic-control")["items"] == (
        auditor.audit_accesses(subject=audited.bob.address)["items"]
    )
    assert auditor.audit_accesses(subject=audited.bob.address, purpose=99)["items"] == []


def test_auditor_filters_accesses_by_time(audited: Audited, auditor: GatewayClient) -> None:
    """`since` is inclusive and `until` exclusive, both unix seconds of the access's block."""
    alices = auditor.audit_accesses(subject=audited.alice.address)["items"]
    first = alices[0]["timestamp"]

    assert auditor.audit_accesses(subject=audited.alice.address, since=first)["items"] == alices
    assert auditor.audit_accesses(subject=audited.alice.address, until=first)["items"] == []
    later = auditor.audit_accesses(subject=audited.alice.address, since=alices[-1]["timestamp"] + 1)
    assert later["items"] == []


def test_auditor_pages_through_accesses(audited: Audited, auditor: GatewayClient) -> None:
    """Pages of `limit` items follow `next_offset` until it is null; together they are the whole listing."""
    alice = audited.alice.address
    whole = auditor.audit_accesses(subject=alice)
    assert (whole["limit"], whole["offset"], whole["next_offset"]) == (100, 0, None)

    first = auditor.audit_accesses(subject=alice, limit=2)
    assert (len(first["items"]), first["next_offset"]) == (2, 2)
    second = auditor.audit_accesses(subject=alice, limit=2, offset=first["next_offset"])
    assert (len(second["items"]), second["offset"], second["next_offset"]) == (1, 2, None)
    assert first["items"] + second["items"] == whole["items"]
    assert auditor.audit_accesses(subject=alice, limit=1000, offset=50)["items"] == []


def test_auditor_lists_refused_attempts_filtered_and_paged(
    consortium: Consortium, audited: Audited, auditor: GatewayClient
) -> None:
    """`/v1/audit/refusals` lists who was refused what and why, with the accesses' filters and pages."""
    inspector = audited.inspector.address
    every = auditor.audit_refusals(org=inspector)
    assert [i["rule"] for i in every["items"]] == list(REFUSED_RULES) and every["next_offset"] is None
    lab, contact = every["items"]
    assert (lab["record"], lab["requester"], lab["requester_name"], lab["custodian_name"]) == (
        audited.lab, inspector, "inspectorate", "health"
    )
    assert lab["why"] == "the consent was given to another organisation"
    assert lab["rule_args"]["grantee"] == consortium.transport.address and lab["rule_args"]["caller"] == inspector
    assert contact["why"] == "the number of consents did not match what the record needs"
    assert lab["tx_hash"] == contact["tx_hash"] and lab["block"] >= on_chain(consortium, audited.contact)[-1][3]

    assert auditor.audit_refusals(subject=audited.alice.address)["items"] == [lab]
    assert auditor.audit_refusals(record=audited.contact)["items"] == [contact]
    # police neither made these attempts nor holds the records (other modules' refusals by police may exist)
    assert not {lab["tx_hash"]} & {i["tx_hash"] for i in auditor.audit_refusals(org=consortium.police.address)["items"]}
    assert auditor.audit_refusals(subject=audited.bob.address, since=contact["timestamp"] + 1)["items"] == []
    first = auditor.audit_refusals(org=inspector, limit=1)
    assert (first["items"], first["next_offset"]) == ([lab], 1)
    assert auditor.audit_refusals(org=inspector, limit=1, offset=1)["items"] == [contact]
    assert auditor.audit_accesses(org=inspector)["items"] == []  # refused attempts are no accesses


@pytest.mark.parametrize("path", ["/v1/audit/accesses", "/v1/audit/refusals"])
@pytest.mark.parametrize("query", [
    "limit=1001", "limit=0", "offset=-1", "subject=0x1234", "org=police", "record=0x" + "zz" * 32,
    "since=yesterday", "purpose=drop%20table",
])
def test_bad_filters_are_refused(consortium: Consortium, audited: Audited, query: str, path: str) -> None:
    """A malformed filter or page answers 422 invalid_request naming it."""
    response = signed(consortium.health, audited.auditor.key, "GET", f"{path}?{query}")

    assert query.split("=")[0] in expect(response, 422, "invalid_request")["detail"]


@pytest.mark.parametrize("who", ["health", "transport", "outsider"])
@pytest.mark.parametrize("path", ["/v1/audit/accesses", "/v1/audit/refusals", "/v1/audit/verify"])
def test_non_auditor_is_refused(consortium: Consortium, audited: Audited, who: str, path: str) -> None:
    """A custodian, a requester or a non-member asking for audit data answers 403 forbidden."""
    key = bytes(Account.create().key) if who == "outsider" else consortium.key(consortium.agencies[who])

    answer = expect(signed(consortium.health, key, "GET", path), 403, "forbidden")

    assert ("not a member" if who == "outsider" else "auditor") in answer["detail"]


def test_verify_at_every_gateway_finds_no_discrepancies(consortium: Consortium, audited: Audited) -> None:
    """Each gateway's index verifies clean against the chain, up to a block holding this module's accesses."""
    for agency in consortium.agencies.values():
        with GatewayClient(agency.url, audited.auditor) as client:
            report = client.audit_verify()
        assert report["ok"] is True, report["discrepancies"]
        assert (report["discrepancies"], report["counts"]) == ([], {})
        assert report["accesses"] >= 4 and report["heads_checked"] == report["records"] >= 3
        assert report["refusals"] >= len(REFUSED_RULES) and "refused attempts (on no hash chain)" in report["summary"]
        assert report["block"] >= on_chain(consortium, audited.contact)[-1][3]


def test_subject_sees_exactly_their_own_history(consortium: Consortium, audited: Audited) -> None:
    """Alice and Bob each get every access to their own records, with tx hashes and heads that match the chain, and
    the refused attempts to read them."""
    for subject, records in ((audited.alice, (audited.lab, audited.stats)), (audited.bob, (audited.contact,))):
        with GatewayClient(consortium.transport.url, subject) as client:
            history = client.my_history()

        assert history["subject"] == subject.address
        assert located(history["items"]) == on_chain(consortium, *records)
        assert {r["record"]: r["accesses"] for r in history["records"]} == {
            r: len(consortium.accesses(r)) for r in records
        }
        # Who tried to read their records and was refused: the inspectorate, once for each subject.
        assert [(r["record"], r["requester_name"]) for r in history["refusals"]] == [(records[0], "inspectorate")]
        for shown in history["records"]:
            chain_head = consortium.ledger.head(bytes.fromhex(shown["record"][2:]))
            assert shown["head"] == "0x" + chain_head.hex()
            assert shown["head"] == "0x" + fold(consortium.accesses(shown["record"])).hex()


def test_subject_history_ignores_a_subject_in_the_query(consortium: Consortium, audited: Audited) -> None:
    """Bob asking with `?subject=<alice>` still gets his own history only; a stranger's history is empty."""
    response = signed(consortium.health, audited.bob.key, "GET",
                      f"/v1/subjects/me/history?subject={audited.alice.address}")

    history = expect(response, 200)
    assert history["subject"] == audited.bob.address
    assert {i["record"] for i in history["items"]} == {audited.contact}
    stranger = expect(signed(consortium.health, Account.create().key, "GET", "/v1/subjects/me/history"), 200)
    assert (stranger["items"], stranger["records"]) == ([], [])


def test_gateway_indexes_new_accesses_in_the_background(consortium: Consortium) -> None:
    """Without any audit request, police's gateway indexes a new access into its own database in the background.

    Waited for up to INDEX_PATIENCE: a bound on a hang, not on speed (a loaded machine runs the upkeep slowly).
    """
    record = consortium.ingest({"district": "West", "cases": 1}, category=DISTRICT_STATS)
    tx = expect(consortium.access(consortium.transport, record), 200)["tx"]
    engine = consortium.store(consortium.police).engine
    deadline = time.monotonic() + INDEX_PATIENCE
    while True:
        with engine.connect() as conn:
            indexed = conn.execute(select(accesses.c.tx_hash).where(accesses.c.record == record)).scalars().all()
        if indexed or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    engine.dispose()

    assert indexed == [tx]


@pytest.mark.parametrize(
    "path", ["/v1/audit/accesses", "/v1/audit/refusals", "/v1/audit/verify", "/v1/subjects/me/history"]
)
def test_unsigned_audit_request_is_refused(consortium: Consortium, path: str) -> None:
    """A request without signature headers answers 401 unauthenticated."""
    expect(httpx.get(consortium.health.url + path, trust_env=False, timeout=30), 401, "unauthenticated")


def test_client_raises_the_gateways_refusal(consortium: Consortium) -> None:
    """GatewayClient.audit_accesses by a requester raises GatewayError 403 forbidden."""
    transport = Account.from_key(consortium.key(consortium.transport))
    with GatewayClient(consortium.health.url, transport) as client, pytest.raises(GatewayError, match="auditor"):
        client.audit_accesses()
