"""The chain view reads each fact once and follows the chain's events: catalog changes, tombstones, revocations
and membership changes reach it through `refresh()`, not through a re-read or an expiring TTL.

The view runs in this process over a ledger deployed on a private anvil (governed in through real proposals),
its provider wrapped to record every JSON-RPC method called, so the tests count reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from web3.middleware import Web3Middleware

from consentledger import governance
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.chain.sender import TransactionSender
from consentledger.consent import Consent, consent_id, sign_consent, sign_revocation
from consentledger.errors import ContractRevertError
from consentledger.gateway.chainview import ChainView
from consentledger.gateway.membership import MembershipCache
from consentledger.types import ConsentStatus, MemberStatus, RecordKind, Role, Sensitivity, TombstoneReason

from .world import CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, catalog

pytestmark = pytest.mark.process

ADMIN, CUSTODIAN, REQUESTER = 0, 1, 2
"""Dev accounts on this module's own anvil."""
RESEARCH = 2
VISITS = 9
"""A category added by one test."""
PAGE = 7
"""Blocks per eth_getLogs in the paging test."""
LONG = 3600.0
"""A TTL no test outlives: whatever a test sees change, an event made it."""


@dataclass
class Calls:
    """The JSON-RPC methods called through one connection, in order."""

    methods: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def during(self, action: Callable[[], Any]) -> list[str]:
        """Return the methods `action` called."""
        start = len(self.methods)
        action()
        return self.methods[start:]


@dataclass
class Chain:
    """A governed deployment: the admin's, custodian's and requester's senders over a recorded connection."""

    node: LocalNode
    ledger: Ledger
    calls: Calls
    admin: TransactionSender
    custodian: TransactionSender
    requester: TransactionSender

    def govern(self, proposed: governance.ProposedAction) -> None:
        """Propose and (threshold 1) execute a governance action."""
        _, executed = self.ledger.propose(self.admin, proposed)
        assert executed, proposed.describe()

    def view(self) -> ChainView:
        """Return a fresh view whose caches (catalog and members) outlive every test."""
        return ChainView(self.ledger, MembershipCache(self.ledger, LONG), catalog_ttl=LONG)

    def register(self, name: str) -> bytes:
        """Register an OPEN record `name` held by the custodian; return its id."""
        record = keccak(text=f"chainview:{name}:{time.time_ns()}")
        self.ledger.register_record(self.custodian, record, Account.create().address, DISTRICT_STATS,
                                    keccak(text=f"commitment:{name}"))
        return record


def _recording(w3: Any, calls: Calls) -> None:
    class Record(Web3Middleware):
        def wrap_make_request(self, make_request: Any) -> Any:
            def middleware(method: str, params: Any) -> Any:
                calls.methods.append(method)
                calls.params.append(params)
                return make_request(method, params)
            return middleware

    w3.middleware_onion.add(Record, "recording")


def _number(block: int | str) -> int:
    return block if isinstance(block, int) else int(block, 16)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    """The catalog every gateway test uses, a custodian and a requester admitted, on a private anvil."""
    node = start_node(ChainKind.ANVIL)
    try:
        w3 = connect(node.rpc_url)
        calls = Calls()
        _recording(w3, calls)
        admin = dev_account(ADMIN)
        ledger = deploy(w3, admin, [admin.address], 1)
        chain = Chain(node, ledger, calls, ledger.sender(admin), ledger.sender(dev_account(CUSTODIAN)),
                      ledger.sender(dev_account(REQUESTER)))
        for action in catalog():
            chain.govern(action)
        chain.govern(governance.admit_member(chain.custodian.address, Role.CUSTODIAN, "health", b"\x01" * 32,
                                             "http://health"))
        chain.govern(governance.admit_member(chain.requester.address, Role.REQUESTER, "police", b"\x02" * 32,
                                             "http://police"))
        yield chain
    finally:
        node.stop()


def test_a_category_change_by_governance_is_seen_after_refresh_and_not_before(chain: Chain) -> None:
    """The category is read once; a CategoryPurposesChanged event (not the TTL) drops it, and the next read
    shows the purposes governance allowed."""
    view = chain.view()
    assert view.category(CONTACT_TRACE).allowed_purposes == (EPIDEMIC_CONTROL,)
    chain.govern(governance.add_purpose(RESEARCH, "research"))
    chain.govern(governance.set_category_purposes(CONTACT_TRACE, [EPIDEMIC_CONTROL, RESEARCH]))

    assert chain.calls.during(lambda: view.category(CONTACT_TRACE)) == []  # cached: no read
    assert view.category(CONTACT_TRACE).allowed_purposes == (EPIDEMIC_CONTROL,)
    assert view.refresh() == 2  # PurposeAdded, CategoryPurposesChanged
    assert view.category(CONTACT_TRACE).allowed_purposes == (EPIDEMIC_CONTROL, RESEARCH)
    assert view.category(DISTRICT_STATS).name == "district-stats"


def test_a_purpose_sunset_by_governance_is_seen_after_refresh(chain: Chain) -> None:
    """A PurposeSunsetChanged event drops the cached purpose; the next read carries the sunset."""
    view = chain.view()
    assert view.purpose(EPIDEMIC_CONTROL).sunset == 0
    sunset = view.latest_time + 30 * 86400
    chain.govern(governance.set_purpose_sunset(EPIDEMIC_CONTROL, sunset))
    try:
        assert view.purpose(EPIDEMIC_CONTROL).sunset == 0
        view.refresh()
        assert view.purpose(EPIDEMIC_CONTROL).sunset == sunset
        assert view.purpose(EPIDEMIC_CONTROL).name == "epidemic-control"
    finally:
        chain.govern(governance.set_purpose_sunset(EPIDEMIC_CONTROL, 0))


def test_the_whole_catalog_is_read_once_and_a_category_added_by_governance_appears_after_refresh(
    chain: Chain,
) -> None:
    """`catalog()` twice: the second reads nothing; a CategoryAdded event (not the TTL) makes the next listing
    read the id list again and show the new category, judged at the refreshed block's time."""
    view = chain.view()
    listed = view.catalog()
    assert [c.id for c in listed.categories] == list(chain.ledger.category_ids())
    assert chain.calls.during(view.catalog) == []
    chain.govern(governance.add_category(VISITS, "visits", Sensitivity.OPEN, 86400, ("ward",), (),
                                         [EPIDEMIC_CONTROL]))

    assert VISITS not in [c.id for c in view.catalog().categories]
    view.refresh()
    refreshed = view.catalog()
    added = refreshed.category(VISITS)
    assert added is not None and added.name == "visits"
    assert (refreshed.block, refreshed.block_time) == (view.latest_block, view.latest_time)
    assert refreshed.refusal(VISITS, EPIDEMIC_CONTROL) is None


def test_record_metadata_is_read_once_and_its_tombstone_followed(chain: Chain) -> None:
    """One eth_call for the record however often it is asked for; its RecordTombstoned event then marks the
    cached record destroyed at the next refresh, with no new read of the record."""
    record = chain.register("tombstoned")
    view = chain.view()
    first = chain.calls.during(lambda: view.record(record))
    again = chain.calls.during(lambda: [view.record(record) for _ in range(5)])
    assert first == ["eth_call"] and again == []
    info = view.record(record)
    assert (info.custodian, info.category, info.kind, info.tombstone) == (
        chain.custodian.address, DISTRICT_STATS, RecordKind.PLAIN, TombstoneReason.NONE)

    chain.ledger.tombstone(chain.custodian, record, TombstoneReason.ERASURE)
    assert view.record(record).tombstone is TombstoneReason.NONE  # not re-read: only events change it
    view.refresh()
    assert chain.calls.during(lambda: view.record(record)) == []
    assert view.record(record) == chain.ledger.record(record)  # the chain agrees, accesses included
    assert view.record(record).tombstone is TombstoneReason.ERASURE


def test_an_unknown_record_is_not_remembered(chain: Chain) -> None:
    """A record not registered yet raises the chain's revert each time it is asked for, and is found once it is."""
    view = chain.view()
    record = keccak(text=f"chainview:later:{time.time_ns()}")
    with pytest.raises(ContractRevertError) as refused:
        view.record(record)
    assert refused.value.rule == "RecordRegistryUnknownRecord"
    chain.ledger.register_record(chain.custodian, record, Account.create().address, DISTRICT_STATS,
                                 keccak(text="commitment:later"))
    assert view.record(record).custodian == chain.custodian.address


def test_a_revocation_is_followed_by_the_consent_status(chain: Chain) -> None:
    """A granted consent is read once; its ConsentRevoked event makes it REVOKED at the next refresh."""
    subject = Account.create()
    domain = chain.ledger.domain()
    terms = Consent.new(subject=subject.address, grantee=chain.requester.address, category=DISTRICT_STATS,
                        purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 86400)
    cid = chain.ledger.grant_consent(chain.admin, terms, sign_consent(terms, subject.key, domain))
    assert cid == consent_id(terms, domain)
    view = chain.view()
    assert view.consent_status(cid) is ConsentStatus.GRANTED
    chain.ledger.revoke_consent_by_signature(chain.admin, terms, sign_revocation(cid, subject.key, domain))
    assert view.consent_status(cid) is ConsentStatus.GRANTED
    view.refresh()
    assert chain.calls.during(lambda: view.consent_status(cid)) == []
    assert view.consent_status(cid) is ConsentStatus.REVOKED


@pytest.mark.parametrize("replacing_blocks", [1, 2], ids=["same height", "longer chain"])
def test_a_revocation_in_a_block_that_replaced_one_the_view_had_seen_is_not_missed(
        chain: Chain, replacing_blocks: int) -> None:
    """The view sees block N; the chain reorganises and a block carrying a revocation replaces N (alone, or
    followed by one more block). The next refresh finds block N's hash changed, forgets what it read and so
    answers REVOKED: a custodian would otherwise release under a revoked consent."""
    subject = Account.create()
    domain = chain.ledger.domain()
    terms = Consent.new(subject=subject.address, grantee=chain.requester.address, category=DISTRICT_STATS,
                        purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 86400)
    cid = chain.ledger.grant_consent(chain.admin, terms, sign_consent(terms, subject.key, domain))
    rpc = chain.ledger.w3.provider.make_request
    snapshot = rpc("evm_snapshot", [])["result"]
    view = chain.view()
    assert view.consent_status(cid) is ConsentStatus.GRANTED
    rpc("evm_mine", [])
    view.refresh()
    seen = view.latest_block
    assert rpc("evm_revert", [snapshot])["result"] is True
    chain.ledger.revoke_consent_by_signature(chain.admin, terms, sign_revocation(cid, subject.key, domain))
    if replacing_blocks > 1:
        rpc("anvil_mine", [hex(replacing_blocks - 1)])
    assert chain.ledger.block_number() == seen + replacing_blocks - 1
    view.refresh()
    assert view.consent_status(cid) is ConsentStatus.REVOKED


def test_a_consent_read_before_its_grant_follows_the_grant(chain: Chain) -> None:
    """A consent unknown on chain (NONE) turns GRANTED with its ConsentGranted event."""
    subject = Account.create()
    domain = chain.ledger.domain()
    terms = Consent.new(subject=subject.address, grantee=chain.requester.address, category=DISTRICT_STATS,
                        purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 86400)
    view = chain.view()
    assert view.consent_status(consent_id(terms, domain)) is ConsentStatus.NONE
    cid = chain.ledger.grant_consent(chain.admin, terms, sign_consent(terms, subject.key, domain))
    view.refresh()
    assert view.consent_status(cid) is ConsentStatus.GRANTED


def test_member_standing_and_key_follow_membership_events(chain: Chain) -> None:
    """The requester's standing is read once; a key change and a suspension by governance reach the view at
    the next refresh (its events invalidate the member), a reinstatement too."""
    view = chain.view()
    requester = chain.requester.address
    assert view.member(requester).x25519_key == b"\x02" * 32
    assert chain.calls.during(lambda: view.member(requester)) == []
    chain.govern(governance.set_member_keys(requester, b"\x03" * 32, "http://police-2"))
    chain.govern(governance.suspend_member(requester))
    try:
        assert view.member(requester).status is MemberStatus.ACTIVE
        view.refresh()
        member = view.member(requester)
        assert (member.x25519_key, member.gateway_url, member.status) == (
            b"\x03" * 32, "http://police-2", MemberStatus.SUSPENDED)
    finally:
        chain.govern(governance.reinstate_member(requester))
    view.refresh()
    assert view.member(requester).status is MemberStatus.ACTIVE


def test_refresh_without_new_blocks_costs_one_read(chain: Chain) -> None:
    """With nothing mined: one read of the latest block's header; with a new block: that, the header of the
    block last seen (is it still on the chain?) and one eth_getLogs."""
    view = chain.view()
    assert chain.calls.during(view.refresh) == ["eth_getBlockByNumber"]
    chain.register("one more block")
    assert chain.calls.during(view.refresh) == ["eth_getBlockByNumber", "eth_getBlockByNumber", "eth_getLogs"]
    assert view.latest_block == chain.ledger.block_number()
    assert view.latest_time == chain.ledger.latest_block_time()


def test_a_long_range_is_followed_in_pages_of_at_most_log_range_blocks(chain: Chain) -> None:
    """Over 2 * log_range + 1 new blocks refresh sends three eth_getLogs, none spanning more than the limit,
    and still applies a tombstone mined in the last of them (a small range: anvil mines 10,000 blocks slowly)."""
    record = chain.register("paged")
    view = ChainView(chain.ledger, MembershipCache(chain.ledger, LONG), catalog_ttl=LONG, log_range=PAGE)
    assert view.record(record).tombstone is TombstoneReason.NONE
    chain.ledger.w3.provider.make_request("anvil_mine", [hex(2 * PAGE)])
    chain.ledger.tombstone(chain.custodian, record, TombstoneReason.RETENTION)
    start = len(chain.calls.methods)
    view.refresh()
    pages = [p[0] for m, p in zip(chain.calls.methods[start:], chain.calls.params[start:], strict=True)
             if m == "eth_getLogs"]
    spans = [_number(p["toBlock"]) - _number(p["fromBlock"]) + 1 for p in pages]
    assert len(pages) == 3 and max(spans) <= PAGE and sum(spans) == 2 * PAGE + 1
    assert view.record(record).tombstone is TombstoneReason.RETENTION



def test_the_member_cache_keeps_a_bounded_number_of_accounts_least_recently_used_first_out(chain: Chain) -> None:
    """Strangers signing with fresh keys, one after another, do not grow the member cache past its bound: the
    least recently used account is dropped (and read again when it comes back); one in constant use stays."""
    cache = MembershipCache(chain.ledger, LONG, max_entries=4)
    assert cache.get(chain.custodian.address).status is MemberStatus.ACTIVE
    strangers = [Account.create().address for _ in range(10)]
    for stranger in strangers:
        assert cache.get(stranger).status is MemberStatus.NONE
        assert chain.calls.during(lambda: cache.get(chain.custodian.address)) == []  # kept: used all along

    assert len(cache) == 4
    assert "eth_call" in chain.calls.during(lambda: cache.get(strangers[0]))  # dropped long ago: read again
    assert chain.calls.during(lambda: cache.get(strangers[-1])) == []
