"""Gateway fixtures: one consortium of real gateway processes for the whole `tests/gateway` package.

Starting a gateway costs seconds, so health (custodian), transport and police (requesters) serve
every module; they sign with dev accounts 7, 8 and 9, which no other test uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger import governance
from consentledger.chain.batch import AccessRequest
from consentledger.chain.node import LocalNode
from consentledger.client import GatewayClient
from consentledger.types import Role

from .world import (
    CONTACT_TRACE,
    DISTRICT_STATS,
    EPIDEMIC_CONTROL,
    HEALTH,
    LAB_RESULT,
    POLICE,
    TRANSPORT,
    Consortium,
    expect,
    start_consortium,
)

SWEEP_OFTEN = {"sweep_interval": 1.0}
"""The gateways sweep every second (not every 30 s), so lifecycle tests see a due record go within seconds."""
CALLBACKS_SOON = {"callback_backoff": 0.2, "callback_attempts": 5}
"""A failed consent-request callback is tried again after 0.2, 0.4, 0.8, 1.6 s (not 2 s doubling, 8 times)."""


@pytest.fixture(scope="package")
def consortium(ganache: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Health (custodian), transport and police (requesters) with running gateways on the session ganache."""
    members = {
        "health": (HEALTH, Role.CUSTODIAN),
        "transport": (TRANSPORT, Role.REQUESTER),
        "police": (POLICE, Role.REQUESTER),
    }
    started = start_consortium(ganache.rpc_url, tmp_path_factory.mktemp("consortium"), members,
                               settings={**SWEEP_OFTEN, **CALLBACKS_SOON})
    try:
        yield started
    finally:
        started.stop()


@dataclass(frozen=True)
class Audited:
    """Accesses made for the audit tests: alice's lab record (twice, by transport) and open stats (by police),
    bob's contact trace (once, by police); an auditor member holding only the AUDITOR role; and the inspectorate
    (a requester) refused twice in one batch: alice's lab record under transport's consent, bob's contact trace
    without any (`REFUSED_RULES`)."""

    auditor: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    lab: str
    stats: str
    contact: str
    inspector: LocalAccount


REFUSED_RULES = ("ConsentRegistryWrongGrantee", "AccessLedgerConsentCountMismatch")
"""The rules of the inspectorate's refused attempts (lab, then contact), in chain order."""


def fund(consortium: Consortium, address: str) -> None:
    """Send 10 ETH from the admin to `address`, through the admin's own nonce allocator."""
    admin, w3 = consortium.admin, consortium.ledger.w3
    with admin.nonces.signing_lock(admin.address):
        tx = {"to": address, "value": 10 * 10**18, "gas": 21_000, "gasPrice": w3.eth.gas_price,
              "nonce": admin.nonces.allocate(admin.address), "chainId": w3.eth.chain_id}
        signed_tx = admin.account.sign_transaction(tx)
        admin.broadcast(bytes(signed_tx.raw_transaction))
    admin.wait_receipt(bytes(signed_tx.hash))


@pytest.fixture(scope="package")
def audited(consortium: Consortium) -> Audited:
    """The accesses above, made over HTTP, a fresh auditor admitted by governance (it sends no transactions), and
    the inspectorate's refused batch, sent straight to the chain with its own key (no gateway holds it)."""
    alice, bob, auditor = Account.create(), Account.create(), Account.create()
    consortium.govern(governance.admit_member(auditor.address, Role.AUDITOR, "audit office"))
    lab = consortium.ingest({"test": "pcr", "result": "positive"}, category=LAB_RESULT, subject=alice.address)
    stats = consortium.ingest({"district": "East", "cases": 4}, category=DISTRICT_STATS, subject=alice.address)
    contact = consortium.ingest({"name": "Bo", "phone": "555-0142", "district": "East"}, category=CONTACT_TRACE,
                                subject=bob.address)
    lab_consent = consortium.grant(alice, consortium.transport, LAB_RESULT, record=bytes.fromhex(lab[2:]),
                                   max_uses=5)
    contact_consent = consortium.grant(bob, consortium.police, CONTACT_TRACE, identified=True)
    expect(consortium.access(consortium.transport, lab, [lab_consent]), 200)
    expect(consortium.access(consortium.police, stats), 200)
    expect(consortium.access(consortium.transport, lab, [lab_consent]), 200)
    expect(consortium.access(consortium.police, contact, [contact_consent]), 200)
    inspector = Account.create()
    fund(consortium, inspector.address)
    consortium.govern(governance.admit_member(inspector.address, Role.REQUESTER, "inspectorate"))
    ledger = consortium.ledger
    refused = ledger.request_access_batch(ledger.sender(inspector), [
        AccessRequest(bytes.fromhex(lab[2:]), EPIDEMIC_CONTROL, (lab_consent,)),
        AccessRequest(bytes.fromhex(contact[2:]), EPIDEMIC_CONTROL),
    ])
    assert tuple(getattr(r, "rule", None) for r in refused) == REFUSED_RULES, refused
    return Audited(auditor, alice, bob, lab, stats, contact, inspector)


@pytest.fixture
def auditor(consortium: Consortium, audited: Audited) -> Iterator[GatewayClient]:
    """The auditor's client of health's gateway."""
    with GatewayClient(consortium.health.url, audited.auditor) as client:
        yield client
