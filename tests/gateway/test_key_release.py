"""Key release at the custodian: only for an access on chain, only to its requester, only for its X25519 key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consentledger.chain.relay import tombstone_payload
from consentledger.crypto.disclosure import Disclosure
from consentledger.crypto.keyfiles import load_x25519_keyfile
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap
from consentledger.crypto.vault import open_sealed
from consentledger.errors import IntegrityError
from consentledger.gateway.flows.sweep import MAX_TOMBSTONE_TRIES
from consentledger.localnet import DEV_PASSWORD
from consentledger.store import RecordState
from consentledger.store.tables import outbox, records
from consentledger.types import TombstoneReason

from .world import DISTRICT_STATS, Consortium, expect, signed

pytestmark = pytest.mark.process

PAYLOAD = {"district": "East", "cases": 12}


@pytest.fixture(scope="module")
def accessed(consortium: Consortium) -> dict[str, Any]:
    """Transport's answer to its access of a fresh OPEN record (seq 1)."""
    record = consortium.ingest(PAYLOAD, category=DISTRICT_STATS)
    return expect(consortium.access(consortium.transport, record), 200)


def test_key_for_another_orgs_access_is_refused(consortium: Consortium, accessed: dict[str, Any]) -> None:
    """Police asking for the key of transport's access answers 403 forbidden."""
    record, seq, block = accessed["record"], accessed["seq"], accessed["block"]
    response = signed(consortium.health, consortium.key(consortium.police), "POST", f"/v1/keys/{record}/{seq}",
                      {"block": block})

    assert "another organisation" in expect(response, 403, "forbidden")["detail"]


@pytest.mark.parametrize("shift", [(1, 0), (0, 1), (0, -1)], ids=["later-seq", "later-block", "earlier-block"])
def test_key_for_an_access_not_on_chain_is_refused(
    consortium: Consortium, accessed: dict[str, Any], shift: tuple[int, int]
) -> None:
    """A (record, seq) with no AccessRecorded entry in the named block answers 403 forbidden."""
    record, seq, block = accessed["record"], int(accessed["seq"]) + shift[0], int(accessed["block"]) + shift[1]
    response = signed(consortium.health, consortium.key(consortium.transport), "POST", f"/v1/keys/{record}/{seq}",
                      {"block": block})

    assert "is recorded in block" in expect(response, 403, "forbidden")["detail"]


@pytest.mark.parametrize("seq", [-1, 2**24], ids=["negative", "beyond-uint24"])
def test_key_request_for_a_seq_outside_uint24_is_refused(
    consortium: Consortium, accessed: dict[str, Any], seq: int
) -> None:
    """A seq that no AccessRecorded entry can carry answers 422 invalid_request (not a 500)."""
    response = signed(consortium.health, consortium.key(consortium.transport), "POST",
                      f"/v1/keys/{accessed['record']}/{seq}", {"block": accessed["block"]})

    assert "seq" in expect(response, 422, "invalid_request")["detail"]


def test_the_disclosure_opens_only_with_the_requesters_x25519_key(
    consortium: Consortium, accessed: dict[str, Any]
) -> None:
    """The one-time key unwraps with transport's X25519 key into a disclosure that verifies against the chain;
    police's key opens nothing, and the record's own key never leaves the custodian."""
    transport, police = consortium.transport, consortium.police
    record, seq, block = str(accessed["record"]), int(accessed["seq"]), int(accessed["block"])
    response = signed(consortium.health, consortium.key(transport), "POST", f"/v1/keys/{record}/{seq}",
                      {"block": block})
    released = expect(response, 200)
    record_id = bytes.fromhex(record[2:])
    wrapped = WrappedKey.from_json(released["wrapped_key"])
    context = access_context(record_id, seq, transport.address)

    access_key = unwrap(load_x25519_keyfile(transport.directory / "x25519.pem", DEV_PASSWORD), wrapped, context)

    shown = Disclosure.from_json(json.loads(open_sealed(access_key, base64.b64decode(released["disclosure"]),
                                                        context)))
    shown.verify(consortium.ledger.record(record_id).commitment)
    assert shown.visible_payload() == PAYLOAD
    assert (released["identified"], released["use"]) == (False, "standard")
    assert response.headers["cache-control"] == "no-store"
    (wrapped_dek,) = consortium.store(consortium.health).engine.connect().execute(
        records.select().with_only_columns(records.c.wrapped_dek).where(records.c.record_id == record)).one()
    assert access_key != wrapped_dek and "ciphertext" not in released and "salt" not in released
    with pytest.raises(IntegrityError):
        unwrap(load_x25519_keyfile(police.directory / "x25519.pem", DEV_PASSWORD), wrapped, context)
    with pytest.raises(IntegrityError):
        unwrap(load_x25519_keyfile(police.directory / "x25519.pem", DEV_PASSWORD), wrapped,
               access_context(record_id, seq, police.address))


@pytest.mark.parametrize("column", ["ciphertext", "salt"])
def test_tampered_storage_fails_integrity_yet_the_access_is_on_chain(consortium: Consortium, column: str) -> None:
    """A flipped byte in the custodian's stored ciphertext (caught by AES-GCM at the custodian) or salt (caught
    by the requester against the on-chain commitment) makes the access answer 502 without payload."""
    health = consortium.health
    record = consortium.ingest({"district": "West", "cases": 1}, category=DISTRICT_STATS)
    engine = consortium.store(health).engine
    with engine.begin() as conn:
        (stored,) = conn.execute(records.select().with_only_columns(records.c[column])
                                 .where(records.c.record_id == record)).one()
        flipped = bytes(stored[:-5]) + bytes([stored[-5] ^ 0x01]) + bytes(stored[-4:])
        conn.execute(records.update().where(records.c.record_id == record).values({column: flipped}))

    answer = expect(consortium.access(consortium.transport, record), 502, "integrity_error")

    assert "payload" not in answer
    (entry,) = consortium.accesses(record)
    assert (entry.seq, entry.requester) == (1, consortium.transport.address)


def test_a_record_shredded_before_its_tombstone_lands_answers_410_to_the_requester(consortium: Consortium) -> None:
    """In the window between the custodian shredding a record and its tombstone reaching the chain, the access is
    recorded but the requester's gateway answers 410 record_destroyed (the custodian's word), not a 502."""
    record = consortium.ingest({"district": "North", "cases": 2}, category=DISTRICT_STATS)
    store = consortium.store(consortium.health)
    # Its tombstone writes all failed, as many times as the sweep retries them: health's 1 s sweep leaves it
    # shredded with no tombstone on chain (else a retried tombstone could land before the access, a 403).
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(outbox.insert(), [
            {"kind": "tombstone", "record_id": record, "payload": tombstone_payload(record, TombstoneReason.CUSTODIAN),
             "signer": consortium.health.address, "status": "failed", "attempts": 1, "last_error": "test",
             "created_at": now, "updated_at": now}
            for _ in range(MAX_TOMBSTONE_TRIES)
        ])
    store.set_record_state(record, RecordState.SHREDDED)

    answer = expect(consortium.access(consortium.transport, record), 410, "record_destroyed")

    assert answer["record"] == record and "payload" not in answer
    assert [e.seq for e in consortium.accesses(record)] == [1]
