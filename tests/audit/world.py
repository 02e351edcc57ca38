"""The audit tests' consortium on the session ganache: every kind of event, and accesses to trace.

`build_world` deploys a fresh ledger (dev accounts 10–15, which tests/chain/test_gas.py also uses,
one module at a time), governs in purposes, categories and members, registers plain and derived
records, has unfunded subjects sign consents and record attestations that a relayer registers,
registers an anonymous aggregate over two attested records, records accesses, revokes a consent,
suspends and reinstates a member, tombstones a record, and then has batches of accesses refused
(`REFUSED`: each breaks one rule, so each is an AccessRefused event and no access).

Each sender comes from a fresh `Ledger` (`World.ledger()`): a test that reverts the chain then
sends through a new one, so no nonce allocator keeps counters from the reverted blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine, Table, select
from web3 import Web3

from consentledger import governance as gov
from consentledger.attestation import RecordAttestation, sign_attestation
from consentledger.audit import tables as t
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.batch import AccessRequest
from consentledger.chain.compile import ContractArtifact, compile_contracts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.history import access_entries
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import Deployment
from consentledger.consent import Consent, consent_id, sign_consent, sign_revocation
from consentledger.types import AccessEntry, AccessRefusal, ActorId, Role, Sensitivity, TombstoneReason

DAY = 86_400
EPIDEMIC, RESEARCH = 1, 2
CONTACT, LAB, STATS, FLEETING = 1, 2, 3, 4
"""ONE_TIME, PROTECTED, OPEN, and an OPEN category kept only two seconds (for retention tests)."""
FLEETING_RETENTION = 2
AGGREGATE_K = 2
"""District statistics may be anonymous aggregates over 2 distinct attesting subjects."""
ANALYST = ActorId(keccak(text="audit actor:analyst"))
"""The pseudonym of transport's analyst, who made the first refused attempt."""
NEVER_REGISTERED = "never-registered"
"""A record name the world asks for but never registers."""

REFUSED = (
    ("transport", "lab-alice", EPIDEMIC, "ConsentRegistryConsentRevoked"),
    ("transport", "contact-alice", EPIDEMIC, "ConsentRegistryConsentExhausted"),
    ("police", "erased", EPIDEMIC, "RecordRegistryRecordTombstoned"),
    ("police", NEVER_REGISTERED, EPIDEMIC, "RecordRegistryUnknownRecord"),
    ("police", "lab-alice", RESEARCH, "AccessLedgerConsentCountMismatch"),
    ("health", "stats-bob", EPIDEMIC, "ConsortiumMissingRole"),
)
"""The refused attempts of `build_world`, in chain order: (requester, record name, purpose, rule)."""


def record_id(name: str) -> bytes:
    """Return a deterministic 32-byte record id for a test name."""
    return keccak(text=f"audit record:{name}")


def hexid(value: bytes) -> str:
    """Return 32 bytes as the index stores them."""
    return "0x" + value.hex()


@dataclass
class World:
    """A deployed, populated consortium and the parties who act in it."""

    w3: Web3
    rpc_url: str
    deployment: Deployment
    artifacts: dict[str, ContractArtifact]
    admin: LocalAccount
    health: LocalAccount
    transport: LocalAccount
    police: LocalAccount
    relayer: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    records: dict[str, bytes] = field(default_factory=dict)
    consents: dict[str, Consent] = field(default_factory=dict)

    def ledger(self) -> Ledger:
        """Return a fresh Ledger (its own nonce allocator) over the world's deployment."""
        return Ledger(self.w3, self.deployment, self.artifacts)

    def entries(self) -> list[AccessEntry]:
        """Return every AccessRecorded entry on the chain now, in chain order."""
        return access_entries(self.ledger())

    def consent_id(self, name: str) -> str:
        """Return the id (as the index stores it) of the named consent."""
        return hexid(consent_id(self.consents[name], self.ledger().domain()))

    def now(self) -> int:
        """Return the latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def consent(self, name: str, subject: LocalAccount, grantee: LocalAccount, category: int, purpose: int,
                *, record: bytes = b"\0" * 32, max_uses: int = 1) -> Consent:
        """Have `subject` sign a consent, the relayer register it, and remember it as `name`."""
        ledger = self.ledger()
        terms = Consent.new(subject=subject.address, grantee=grantee.address, category=category, purpose=purpose,
                            record=record, max_uses=max_uses, valid_until=self.now() + DAY)
        ledger.grant_consent(ledger.sender(self.relayer), terms, sign_consent(terms, subject.key, ledger.domain()))
        self.consents[name] = terms
        return terms

    def access(self, requester: LocalAccount, record: str, purpose: int, consents: Sequence[str] = ()) -> AccessEntry:
        """Record an access by `requester` to the named record under the named consents."""
        ledger = self.ledger()
        return ledger.request_access(
            ledger.sender(requester), self.records[record], purpose, [self.consents[c] for c in consents]
        )

    def batch(self, requester: LocalAccount, items: Sequence[AccessRequest]) -> list[AccessEntry | AccessRefusal]:
        """Ask for `items` in one requestAccessBatch transaction by `requester`; return each item's outcome."""
        ledger = self.ledger()
        return ledger.request_access_batch(ledger.sender(requester), items)

    def request(
        self, record: str, purpose: int, consents: Sequence[str] = (), actor: bytes = bytes(32)
    ) -> AccessRequest:
        """Return a batch item for the named record (an unregistered name gets its would-be id) and consents."""
        rid = self.records.get(record, record_id(record))
        return AccessRequest(rid, purpose, tuple(self.consents[c] for c in consents), ActorId(actor))

    def register(self, name: str, subject: LocalAccount | None, category: int, derived_from: Sequence[str] = ()) -> str:
        """Register record `name` held by health and return its id as the index stores it."""
        ledger = self.ledger()
        rid = record_id(name)
        ledger.register_record(
            ledger.sender(self.health), rid, subject.address if subject else "", category,
            keccak(text=f"commitment:{name}"), [self.records[d] for d in derived_from],
        )
        self.records[name] = rid
        return hexid(rid)

    def attest(self, name: str, subject: LocalAccount) -> None:
        """Relay `subject`'s signed attestation of the named record."""
        ledger = self.ledger()
        terms = RecordAttestation.of(ledger.record(self.records[name]))
        ledger.attest_record(ledger.sender(self.relayer), self.records[name],
                             sign_attestation(terms, subject.key, ledger.domain()))

    def aggregate(self, name: str, category: int, sources: Sequence[str]) -> str:
        """Register the named anonymous aggregate of the named sources, held by health; return its index id."""
        ledger = self.ledger()
        rid = record_id(name)
        ledger.register_aggregate(ledger.sender(self.health), rid, category, keccak(text=f"commitment:{name}"),
                                  [self.records[s] for s in sources])
        self.records[name] = rid
        return hexid(rid)

    def revoke(self, name: str, subject: LocalAccount) -> None:
        """Relay `subject`'s signed revocation of the named consent."""
        ledger = self.ledger()
        domain = ledger.domain()
        terms = self.consents[name]
        signature = sign_revocation(consent_id(terms, domain), subject.key, domain)
        ledger.revoke_consent_by_signature(ledger.sender(self.relayer), terms, signature)

    def tombstone(self, name: str) -> None:
        """Have health tombstone the named record (erasure)."""
        ledger = self.ledger()
        ledger.tombstone(ledger.sender(self.health), self.records[name], TombstoneReason.ERASURE)

    def govern(self, *actions: gov.ProposedAction) -> None:
        """Run governance actions (threshold 1: each runs when proposed)."""
        ledger = self.ledger()
        admin = ledger.sender(self.admin)
        for action in actions:
            _, ran = ledger.propose(admin, action)
            assert ran

    def advance(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block at the new time."""
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def build_world(rpc_url: str) -> World:
    """Deploy and populate a fresh consortium on the chain at `rpc_url`."""
    w3 = connect(rpc_url)
    admin, deputy, health, transport, police, relayer = dev_accounts(16)[10:16]
    artifacts = compile_contracts()
    ledger = deploy(w3, admin, [admin.address, deputy.address], 1, admin_names=["ministry", "deputy"],
                    artifacts=artifacts)
    world = World(w3, rpc_url, ledger.deployment, artifacts, admin, health, transport, police, relayer,
                  alice=Account.create(), bob=Account.create())
    world.govern(
        gov.add_purpose(EPIDEMIC, "epidemic-control"),
        gov.add_purpose(RESEARCH, "research"),
        gov.add_category(CONTACT, "contact-trace", Sensitivity.ONE_TIME, 30 * DAY, ["name", "phone"], ["name"],
                         [EPIDEMIC, RESEARCH]),
        gov.add_category(LAB, "lab-result", Sensitivity.PROTECTED, 90 * DAY, ["test", "result"], [], [EPIDEMIC]),
        gov.add_category(STATS, "district-stats", Sensitivity.OPEN, 365 * DAY, ["district", "cases"], [],
                         [EPIDEMIC, RESEARCH], min_aggregate_subjects=AGGREGATE_K),
        gov.add_category(FLEETING, "fleeting", Sensitivity.OPEN, FLEETING_RETENTION, ["note"], [], [EPIDEMIC]),
        gov.admit_member(health.address, Role.CUSTODIAN, "health bureau", b"\x01" * 32, "http://health"),
        gov.admit_member(transport.address, Role.REQUESTER, "transport bureau", b"\x02" * 32, "http://transport"),
        gov.admit_member(police.address, Role.REQUESTER, "police", b"\x03" * 32, "http://police"),
        gov.set_member_keys(transport.address, b"\x22" * 32, "http://transport:9002"),
        gov.set_roles(police.address, Role.REQUESTER | Role.AUDITOR),
        gov.set_category_purposes(LAB, [EPIDEMIC, RESEARCH]),
        gov.set_purpose_sunset(RESEARCH, world.now() + 3650 * DAY),
    )
    alice, bob = world.alice, world.bob
    world.register("contact-alice", alice, CONTACT)
    world.register("lab-alice", alice, LAB)
    world.register("stats-bob", bob, STATS)
    world.register("contact-bob", bob, CONTACT)
    world.register("erased", bob, STATS)
    world.register("derived", None, CONTACT, derived_from=["contact-alice", "stats-bob"])
    world.attest("contact-alice", alice)
    world.attest("stats-bob", bob)
    world.aggregate("district", STATS, ["contact-alice", "stats-bob"])

    world.consent("contact", alice, transport, CONTACT, EPIDEMIC, max_uses=3)
    world.consent("lab", alice, transport, LAB, EPIDEMIC, record=world.records["lab-alice"], max_uses=5)
    world.consent("bob-contact", bob, police, CONTACT, RESEARCH, record=world.records["contact-bob"])
    world.consent("derived-alice", alice, transport, CONTACT, EPIDEMIC, record=world.records["derived"])
    world.consent("derived-bob", bob, transport, CONTACT, EPIDEMIC, record=world.records["derived"])

    for _ in range(3):
        world.access(transport, "lab-alice", EPIDEMIC, ["lab"])
    world.access(transport, "contact-alice", EPIDEMIC, ["contact"])
    world.access(police, "stats-bob", EPIDEMIC)
    world.govern(gov.suspend_member(police.address))
    world.govern(gov.reinstate_member(police.address))
    world.access(police, "stats-bob", RESEARCH)
    world.access(police, "contact-bob", RESEARCH, ["bob-contact"])
    world.access(transport, "derived", EPIDEMIC, ["derived-alice", "derived-bob"])

    world.revoke("lab", alice)
    # A consent withdrawn before anyone relayed it: revoked on chain, never granted.
    world.consents["withdrawn"] = Consent.new(subject=alice.address, grantee=police.address, category=STATS,
                                              purpose=EPIDEMIC, valid_until=world.now() + DAY)
    world.revoke("withdrawn", alice)
    world.tombstone("erased")

    refused = [
        *world.batch(transport, [world.request("lab-alice", EPIDEMIC, ["lab"], actor=ANALYST),
                                 world.request("contact-alice", EPIDEMIC, ["contact"])]),
        *world.batch(police, [world.request("erased", EPIDEMIC), world.request(NEVER_REGISTERED, EPIDEMIC),
                              world.request("lab-alice", RESEARCH)]),
        *world.batch(health, [world.request("stats-bob", EPIDEMIC)]),
    ]
    assert [getattr(r, "rule", None) for r in refused] == [rule for *_, rule in REFUSED], refused
    return world


INDEX_TABLES = (t.events, t.members, t.membership_changes, t.categories, t.purposes, t.records, t.record_sources,
                t.consents, t.accesses, t.refusals, t.mandates, t.override_policies, t.overrides)
"""Every table whose content follows from the chain alone (idx_blocks keeps a pruned window)."""


def assert_same_index(engine: Engine, other: Engine) -> None:
    """Assert two index databases hold the same rows in every table that follows from the chain."""
    for table in INDEX_TABLES:
        assert rows(engine, table) == rows(other, table), table.name


def rows(engine: Engine, table: Table, *order: str) -> list[dict[str, Any]]:
    """Return every row of an index table as dicts, ordered by the given columns (default: primary key)."""
    keys = [table.c[c] for c in order] or list(table.primary_key.columns)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(*keys)).mappings()]
