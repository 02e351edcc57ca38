"""Batched key release: many accesses of one requester in one signed call, each answered as its single release would be.

The accesses are recorded on chain with today's single `requestAccess` (signed here with the
requester's key), then their keys are asked for in one POST /v1/keys/batch to health's gateway
process. Two in-process gateways over the same agencies' configs and databases show what a batch
costs the chain (every JSON-RPC call health's gateway makes goes through a recording middleware)
and how a requester's gateway turns one batch into answers like POST /v1/access gives.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3.middleware.base import Web3Middleware

from consentledger.chain.accounts import dev_account
from consentledger.chain.sender import TransactionSender
from consentledger.consent import Consent
from consentledger.crypto.disclosure import Disclosure, Withholding
from consentledger.crypto.keyfiles import load_x25519_keyfile
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap
from consentledger.crypto.vault import open_sealed
from consentledger.errors import RecordDestroyedError, ReleaseRefusedError
from consentledger.gateway.flows import access, release
from consentledger.gateway.flows.key_request import KeyRequest
from consentledger.gateway.runtime import Gateway
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency
from consentledger.settings import MAX_BATCH_ITEMS, MAX_RELEASES, load_settings
from consentledger.store import RecordState, ReleaseLog
from consentledger.types import AccessEntry

from .test_release_bounds import revoke
from .world import (
    CONTACT_TRACE,
    DISTRICT_STATS,
    EPIDEMIC_CONTROL,
    LAB_RESULT,
    POLICE,
    TRANSPORT,
    Consortium,
    expect,
    signed,
)

pytestmark = pytest.mark.process

BATCH = "/v1/keys/batch"


@pytest.fixture(scope="module")
def transport_key(consortium: Consortium) -> TransactionSender:
    """Transport's signer here, recording accesses on chain as its gateway would (its gateway resyncs its nonces)."""
    return consortium.ledger.sender(dev_account(TRANSPORT))


@pytest.fixture(scope="module")
def police_key(consortium: Consortium) -> TransactionSender:
    """Police's signer here, for accesses of another requester."""
    return consortium.ledger.sender(dev_account(POLICE))


def record_access(
    consortium: Consortium, sender: TransactionSender, record: str, consents: Sequence[Consent] = ()
) -> AccessEntry:
    """Record `sender`'s access to `record` for epidemic control on chain (nothing released yet)."""
    return consortium.ledger.request_access(sender, bytes.fromhex(record[2:]), EPIDEMIC_CONTROL, consents)


def item(entry: AccessEntry, consents: Sequence[Consent] = (), **body: Any) -> dict[str, Any]:
    """Return the batch item asking for the release of `entry` with `consents`' terms."""
    return {"record": "0x" + entry.record.hex(), "seq": entry.seq, "block": entry.block_number,
            "consents": [c.to_json() for c in consents], **body}


def batch(consortium: Consortium, items: Sequence[dict[str, Any]], requester: Agency | None = None) -> httpx.Response:
    """POST the items to health's /v1/keys/batch, signed by `requester` (transport by default)."""
    agency = requester or consortium.transport
    return signed(consortium.health, consortium.key(agency), "POST", BATCH, {"items": list(items)})


def single(consortium: Consortium, entry_item: dict[str, Any]) -> httpx.Response:
    """POST one item's body to health's single /v1/keys/{record}/{seq}, signed by transport."""
    body = {k: v for k, v in entry_item.items() if k not in ("record", "seq")}
    path = f"/v1/keys/{entry_item['record']}/{entry_item['seq']}"
    return signed(consortium.health, consortium.key(consortium.transport), "POST", path, body)


def opened(consortium: Consortium, released: dict[str, Any]) -> Disclosure:
    """Return a release's disclosure opened with transport's X25519 key, verified against the record's commitment."""
    record_id = bytes.fromhex(str(released["record"])[2:])
    context = access_context(record_id, int(released["seq"]), consortium.transport.address)
    key = unwrap(load_x25519_keyfile(consortium.transport.directory / "x25519.pem", DEV_PASSWORD),
                 WrappedKey.from_json(released["wrapped_key"]), context)
    shown = Disclosure.from_json(json.loads(open_sealed(key, base64.b64decode(released["disclosure"]), context)))
    shown.verify(consortium.ledger.record(record_id).commitment)
    return shown


def logged(consortium: Consortium, entry: AccessEntry) -> int:
    """Return how many releases of `entry` health's release log holds."""
    return ReleaseLog(consortium.store(consortium.health).engine).count("0x" + entry.record.hex(), entry.seq)


class RpcCalls(Web3Middleware):
    """Counts every JSON-RPC method a Web3 sends (the calls go on to the node unchanged)."""

    methods: list[str] = []

    def request_processor(self, method: Any, params: Any) -> Any:
        RpcCalls.methods.append(str(method))
        return method, params


@pytest.fixture(scope="module")
def in_process(consortium: Consortium) -> Iterator[dict[str, Gateway]]:
    """Health's and transport's gateways opened in this process over their own configs and databases (no upkeep):
    health's JSON-RPC calls are counted, transport's calls to other gateways go over real HTTP."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, DEV_PASSWORD)
        health = Gateway.open(load_settings(consortium.health.created.config))
        transport = Gateway.open(load_settings(consortium.transport.created.config))
    health.ledger.w3.middleware_onion.add(RpcCalls, name="rpc-calls")
    try:
        yield {"health": health, "transport": transport}
    finally:
        health.close()
        transport.close()


def test_a_mixed_batch_gets_the_answer_of_each_items_single_release(
    consortium: Consortium, transport_key: TransactionSender, police_key: TransactionSender
) -> None:
    """One batch of nine: two accesses are released (their disclosures open with transport's key and verify against
    the chain, the contact trace pseudonymised), and the others are refused exactly as their single requests are:
    another requester's access, an access not in the named block, wrong consents, a spent access, a PROTECTED access
    already released, a record not held here and a shredded one."""
    bob, alice = Account.create(), Account.create()
    stats = consortium.ingest({"district": "East", "cases": 7}, category=DISTRICT_STATS)
    contact = consortium.ingest({"name": "Bo", "phone": "555-0200", "district": "East"}, category=CONTACT_TRACE,
                                subject=bob.address)
    lab = consortium.ingest({"test": "pcr", "result": "negative"}, category=LAB_RESULT, subject=alice.address)
    gone = consortium.ingest({"district": "West", "cases": 1}, category=DISTRICT_STATS)
    consent = consortium.grant(bob, consortium.transport, CONTACT_TRACE)
    other = consortium.grant(bob, consortium.transport, CONTACT_TRACE, nonce=9)
    lab_consent = consortium.grant(alice, consortium.transport, LAB_RESULT, record=bytes.fromhex(lab[2:]))
    open_entry, contact_entry = record_access(consortium, transport_key, stats), record_access(
        consortium, transport_key, contact, [consent])
    mismatched = record_access(consortium, transport_key, contact, [other])  # a ONE_TIME consent: used once
    spent, lab_entry = record_access(consortium, transport_key, stats), record_access(
        consortium, transport_key, lab, [lab_consent])
    police_entry, gone_entry = record_access(consortium, police_key, stats), record_access(
        consortium, transport_key, gone)
    for _ in range(MAX_RELEASES):
        expect(single(consortium, item(spent)), 200)
    expect(single(consortium, item(lab_entry, [lab_consent])), 200)
    consortium.store(consortium.health).set_record_state(gone, RecordState.SHREDDED)
    items = [
        item(open_entry), item(contact_entry, [consent], withhold="pseudonymise"),
        item(police_entry), {**item(open_entry), "block": open_entry.block_number + 1},
        item(mismatched, [consent]), item(spent), item(lab_entry, [lab_consent]),
        {**item(open_entry), "record": "0x" + "5a" * 32}, item(gone_entry),
    ]

    answers = expect(batch(consortium, items), 200)["items"]

    assert len(answers) == len(items)
    assert opened(consortium, answers[0]).visible_payload() == {"district": "East", "cases": 7}
    shown = opened(consortium, answers[1])
    assert shown.fields == {"district": "East"} and set(shown.pseudonyms) == {"name", "phone"}
    assert [(a["record"], a["seq"], a["use"]) for a in answers[:2]] == [
        (stats, open_entry.seq, "standard"), (contact, contact_entry.seq, "standard")]
    refusals = [(a["status"], a["error"], a.get("reason")) for a in answers[2:]]
    assert refusals == [
        (403, "forbidden", None), (403, "forbidden", None), (403, "release_refused", "consents_mismatch"),
        (403, "release_refused", "limit_reached"), (403, "release_refused", "protected_released"),
        (404, "not_found", None), (410, "record_destroyed", "custodian"),
    ]
    assert "another organisation" in answers[2]["detail"] and "is recorded in block" in answers[3]["detail"]
    for asked, answer in zip(items[2:], answers[2:], strict=True):  # the single endpoint says the same
        refused = single(consortium, asked)
        # (but for the tombstone's progress: health's sweep may have queued the shredded record's by now)
        assert {**refused.json(), "status": refused.status_code, "tombstone": None} == {**answer, "tombstone": None}
    assert [logged(consortium, e) for e in (open_entry, contact_entry, mismatched, spent, lab_entry)] == [
        1, 1, 0, MAX_RELEASES, 1]


def test_a_batch_finds_its_accesses_with_one_log_query_per_block_range(
    consortium: Consortium, transport_key: TransactionSender, in_process: dict[str, Gateway]
) -> None:
    """Four accesses in four blocks b1..b4: health's gateway asks the chain for their entries with one eth_getLogs;
    with `logs_block_range` just covering b1..b2 the blocks fall into two or three ranges, one eth_getLogs each,
    and the releases are the same."""
    health = in_process["health"]
    records = [consortium.ingest({"district": "North", "cases": n}, category=DISTRICT_STATS) for n in range(4)]
    entries = [record_access(consortium, transport_key, record) for record in records]
    blocks = [e.block_number for e in entries]
    assert blocks == sorted(blocks) and len(set(blocks)) == 4 and blocks[3] - blocks[0] >= 3
    requests = [KeyRequest(bytes(e.record), e.seq, e.block_number) for e in entries]
    health.chain.refresh()  # the chain view is up to date: its own log query is not counted below

    RpcCalls.methods.clear()
    wide = release.release_keys(health, consortium.transport.address, requests)
    wide_queries = RpcCalls.methods.count("eth_getLogs")
    span = blocks[1] - blocks[0] + 1
    ranges = release.block_ranges(blocks, span)
    health.settings = health.settings.model_copy(update={"logs_block_range": span})
    RpcCalls.methods.clear()
    try:
        narrow = release.release_keys(health, consortium.transport.address, requests)
    finally:
        health.settings = health.settings.model_copy(update={"logs_block_range": 5000})
    narrow_queries = RpcCalls.methods.count("eth_getLogs")

    assert ranges[0] == (blocks[0], blocks[1]) and len(ranges) in (2, 3)
    assert (wide_queries, narrow_queries) == (1, len(ranges))
    for answers in (wide, narrow):
        assert [(a["record"], a["seq"]) for a in answers if isinstance(a, dict)] == [
            (r, e.seq) for r, e in zip(records, entries, strict=True)]
    assert [logged(consortium, e) for e in entries] == [2, 2, 2, 2]


def test_release_limits_hold_across_single_and_batch_calls(
    consortium: Consortium, transport_key: TransactionSender
) -> None:
    """An OPEN access released once alone, then asked for twice in one batch, gets its second and third releases
    there; a further batch and a single request are refused limit_reached. A PROTECTED access asked for twice in
    one batch is released once. The log holds three and one releases."""
    alice = Account.create()
    stats = consortium.ingest({"district": "South", "cases": 2}, category=DISTRICT_STATS)
    lab = consortium.ingest({"test": "pcr", "result": "positive"}, category=LAB_RESULT, subject=alice.address)
    lab_consent = consortium.grant(alice, consortium.transport, LAB_RESULT, record=bytes.fromhex(lab[2:]))
    open_entry, lab_entry = record_access(consortium, transport_key, stats), record_access(
        consortium, transport_key, lab, [lab_consent])
    expect(single(consortium, item(open_entry)), 200)

    first = expect(batch(consortium, [item(open_entry), item(open_entry), item(lab_entry, [lab_consent]),
                                      item(lab_entry, [lab_consent])]), 200)["items"]
    again = expect(batch(consortium, [item(open_entry)]), 200)["items"]
    alone = expect(single(consortium, item(open_entry)), 403, "release_refused")

    assert ["error" in a for a in first] == [False, False, False, True]
    assert first[3]["reason"] == "protected_released" and first[2]["use"] == "immediate"
    assert opened(consortium, first[2]).visible_payload() == {"test": "pcr", "result": "positive"}
    assert (again[0]["reason"], alone["reason"]) == ("limit_reached", "limit_reached")
    assert (logged(consortium, open_entry), logged(consortium, lab_entry)) == (MAX_RELEASES, 1)
    ordinals = [r.ordinal for r in ReleaseLog(consortium.store(consortium.health).engine).of_access(stats, 1)]
    assert ordinals == [1, 2, 3]


def test_a_batch_over_the_item_bound_is_refused_whole(
    consortium: Consortium, transport_key: TransactionSender
) -> None:
    """A batch of max_batch_items + 1 items answers 413 payload_too_large naming the bound and releases nothing;
    an item with a seq no entry carries answers 422 for the whole batch."""
    stats = consortium.ingest({"district": "East", "cases": 9}, category=DISTRICT_STATS)
    entry = record_access(consortium, transport_key, stats)

    over = expect(batch(consortium, [item(entry)] * (MAX_BATCH_ITEMS + 1)), 413, "payload_too_large")
    malformed = expect(batch(consortium, [item(entry), {**item(entry), "seq": 0}]), 422, "invalid_payload")
    empty = expect(batch(consortium, []), 422, "invalid_payload")

    assert f"{MAX_BATCH_ITEMS + 1} items" in over["detail"] and "max_batch_items" in over["detail"]
    assert "items.1.seq" in malformed["detail"] and "items" in empty["detail"]
    assert logged(consortium, entry) == 0


def test_a_batch_from_a_non_requester_is_refused(consortium: Consortium, transport_key: TransactionSender) -> None:
    """The batch endpoint takes the single release's caller rule: the custodian itself (no REQUESTER role) gets 403."""
    stats = consortium.ingest({"district": "East", "cases": 1}, category=DISTRICT_STATS)
    entry = record_access(consortium, transport_key, stats)

    refused = expect(batch(consortium, [item(entry)], requester=consortium.health), 403, "forbidden")

    assert "lacks the requester role" in refused["detail"]


def test_the_requesters_gateway_discloses_recorded_accesses_in_one_call(
    consortium: Consortium, transport_key: TransactionSender, in_process: dict[str, Gateway]
) -> None:
    """Transport's gateway, given four accesses on chain, makes one signed call to health and answers each as
    POST /v1/access would: an OPEN record's payload, an identified contact trace in full, and for a revoked consent
    and a shredded record the errors a single access raises (ReleaseRefusedError, RecordDestroyedError)."""
    transport = in_process["transport"]
    bob, carol = Account.create(), Account.create()
    stats = consortium.ingest({"district": "West", "cases": 4}, category=DISTRICT_STATS)
    contact = consortium.ingest({"name": "Bo", "phone": "555-0201", "district": "West"}, category=CONTACT_TRACE,
                                subject=bob.address)
    revoked = consortium.ingest({"name": "Cy", "phone": "555-0202", "district": "West"}, category=CONTACT_TRACE,
                                subject=carol.address)
    gone = consortium.ingest({"district": "West", "cases": 5}, category=DISTRICT_STATS)
    identified = consortium.grant(bob, consortium.transport, CONTACT_TRACE, identified=True)
    withdrawn = consortium.grant(carol, consortium.transport, CONTACT_TRACE)
    recorded = [
        access.RecordedAccess(record_access(consortium, transport_key, stats)),
        access.RecordedAccess(record_access(consortium, transport_key, contact, [identified]), (identified,)),
        access.RecordedAccess(record_access(consortium, transport_key, revoked, [withdrawn]), (withdrawn,),
                              Withholding.PSEUDONYMISE),
        access.RecordedAccess(record_access(consortium, transport_key, gone)),
    ]
    revoke(consortium, carol, withdrawn)
    consortium.store(consortium.health).set_record_state(gone, RecordState.SHREDDED)
    calls: list[str] = []
    transport.peers.event_hooks["request"].append(lambda request: calls.append(request.url.path))

    answers = access.disclose_recorded(transport, recorded)

    assert calls == [BATCH]
    plain, full, refused, destroyed = answers
    assert isinstance(plain, dict) and isinstance(full, dict)
    assert plain["payload"] == {"district": "West", "cases": 4} and plain["custodian"] == consortium.health.address
    assert full["payload"] == {"name": "Bo", "phone": "555-0201", "district": "West"} and full["identified"]
    entry = recorded[1].entry
    assert (full["record"], full["seq"], full["tx"], full["block"], full["use"]) == (
        contact, entry.seq, "0x" + entry.tx_hash.hex(), entry.block_number, "standard")
    # the single access's answer adds its receipt (a batch's items are fetched at /v1/receipts/{record}/{seq})
    assert set(full) == set(expect(consortium.access(consortium.transport, stats), 200)) - {"receipt"}
    assert isinstance(refused, ReleaseRefusedError) and refused.reason == "consent_revoked"
    assert (refused.record, refused.seq) == (revoked, recorded[2].entry.seq)
    assert str(refused).startswith("the custodian refused the release: ")
    assert isinstance(destroyed, RecordDestroyedError) and destroyed.record == gone
