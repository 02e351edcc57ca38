"""Helpers of the lifecycle tests: waiting for the sweeper and relay, reading tombstones and revocations on chain."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import httpx
from eth_account.signers.local import LocalAccount

from consentledger.chain.ledger import Ledger
from consentledger.consent import Consent, sign_consent
from consentledger.localnet import Agency
from consentledger.types import TombstoneReason

from .world import Consortium, expect, signed

T = TypeVar("T")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 60.0, what: str = "") -> T:
    """Return the first value of `probe()` that `done` accepts, probing every 0.2 s; fail after `timeout` s.

    The gateways sweep every second and relay every half second; the margin is for a loaded machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or probe} (last: {value!r})")
        time.sleep(0.2)


def tombstones_on_chain(ledger: Ledger, record: str) -> list[TombstoneReason]:
    """Return the reasons of every RecordTombstoned event of `record` (more than one would be a double tombstone)."""
    logs = ledger.access.events.RecordTombstoned().get_logs(
        from_block=ledger.deployment.deploy_block, argument_filters={"record": bytes.fromhex(record[2:])}
    )
    return [TombstoneReason(log["args"]["reason"]) for log in logs]


def tombstone_txs(ledger: Ledger, record: str) -> list[tuple[str, int]]:
    """Return (tx hash, block) of every RecordTombstoned event of `record`."""
    logs = ledger.access.events.RecordTombstoned().get_logs(
        from_block=ledger.deployment.deploy_block, argument_filters={"record": bytes.fromhex(record[2:])}
    )
    return [("0x" + bytes(log["transactionHash"]).hex(), int(log["blockNumber"])) for log in logs]


def get_record(consortium: Consortium, record: str) -> httpx.Response:
    """Ask the health gateway (as health) for a record's metadata."""
    return signed(consortium.health, consortium.key(consortium.health), "GET", f"/v1/records/{record}")


def grant_for(consortium: Consortium, subject: LocalAccount, grantee: Agency, category: int, purpose: int) -> Consent:
    """Have `subject` sign a consent for `grantee` for `purpose` and relay it through the grantee's gateway."""
    consent = Consent.new(subject=subject.address, grantee=grantee.address, category=category, purpose=purpose,
                          valid_until=int(time.time()) + 3600, max_uses=5)
    signature = sign_consent(consent, subject.key, consortium.ledger.domain())
    expect(signed(grantee, subject.key, "POST", "/v1/consents",
                  {"consent": consent.to_json(), "signature": "0x" + signature.hex()}), 201)
    return consent


def access_for(
    consortium: Consortium, requester: Agency, record: str, purpose: int, consents: Sequence[Consent] = ()
) -> httpx.Response:
    """Ask `requester`'s own gateway for `record` for `purpose` under `consents`."""
    body = {"record": record, "purpose": purpose, "consents": [c.to_json() for c in consents]}
    return signed(requester, consortium.key(requester), "POST", "/v1/access", body)
