"""Stateful property of the gateway API: ingest, grant, access, revoke, erase and sweep agree with a model.

A hypothesis state machine drives real gateway processes (health the custodian; transport and police
requesters) on a chain of this module's own, only over signed HTTP. A plain model predicts each
answer: the payload (identifying fields withheld unless the consent is identified) or the contract
rule that refuses the access, the consent uses left, which records are destroyed and why. After every
step the invariants are checked against the chain and the custodian's database:
- every answered (200) access has exactly one on-chain entry and exactly one release, and there is
  no entry or release beyond them (no release without its entry);
- each record's hash chain recomputes to its on-chain head;
- each consent's on-chain state and use count are the model's;
- a record's ciphertext is present iff the record is live, and the gateway answers 410 with the
  reason for a destroyed one.
After each example the auditor's `audit verify` must report the chain of responsibility intact.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from consentledger import governance
from consentledger.chain.history import check_record_chain
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.client import GatewayClient
from consentledger.consent import NO_RECORD, Consent, consent_id, sign_consent, sign_revocation
from consentledger.store.tables import records, releases
from consentledger.types import ConsentStatus, Role, Sensitivity, TombstoneReason

from .lifecycle import eventually, tombstones_on_chain
from .world import (
    CONTACT_TRACE,
    EPIDEMIC_CONTROL,
    HEALTH,
    LAB_RESULT,
    POLICE,
    TRANSPORT,
    Consortium,
    expect,
    signed,
    start_consortium,
)

pytestmark = pytest.mark.process

VISIT_LOG = 31
"""An OPEN category kept VISIT_RETENTION seconds: the sweep rule moves the chain's clock past it."""
VISIT_RETENTION = 300
"""Longer than an example runs, so a visit log expires only when the sweep rule says so."""
SENSITIVITY = {CONTACT_TRACE: Sensitivity.ONE_TIME, LAB_RESULT: Sensitivity.PROTECTED, VISIT_LOG: Sensitivity.OPEN}
IDENTIFYING = {CONTACT_TRACE: ("name", "phone"), LAB_RESULT: (), VISIT_LOG: ()}
SUBJECTS = ("alice", "bob")
REQUESTERS = ("transport", "police")
MAX_RECORDS = 5
"""Records one example ingests at most: enough for every kind of refusal, few enough to check after each step."""

# Each step is a real HTTP round trip (an access: a transaction and a key release), so a few short
# examples; derandomized and without a database, the same examples run every time.
SETTINGS = settings(
    max_examples=8,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking replays real transactions for minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class RecordModel:
    """What the model knows of a record the custodian holds."""

    id: str
    subject: str
    category: int
    payload: dict[str, Any]
    retain_until: int
    destroyed: str | None = None  # "erasure" | "retention"
    served: dict[int, str] = field(default_factory=dict)  # seq of each answered access -> its requester

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.id[2:])


@dataclass
class ConsentModel:
    """A relayed consent and what became of it."""

    terms: Consent
    subject: str
    grantee: str
    revoked: bool = False
    uses: int = 0


@dataclass(frozen=True)
class Fleet:
    """The module's consortium and an auditor member (it sends no transactions)."""

    consortium: Consortium
    auditor: LocalAccount


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalNode]:
    """An anvil of this module's own: the sweep rule moves its clock, which no other module must see."""
    with start_node(ChainKind.ANVIL) as node:
        yield node


@pytest.fixture(scope="module")
def fleet(chain: LocalNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Health (custodian), transport and police (requesters) with gateways that sweep only when asked."""
    members = {"health": (HEALTH, Role.CUSTODIAN), "transport": (TRANSPORT, Role.REQUESTER),
               "police": (POLICE, Role.REQUESTER)}
    consortium = start_consortium(chain.rpc_url, tmp_path_factory.mktemp("stateful"), members,
                                  settings={"sweep_interval": 3600.0})
    try:
        consortium.govern(governance.add_category(VISIT_LOG, "visit-log", Sensitivity.OPEN, VISIT_RETENTION,
                                                  ("district", "cases"), (), [EPIDEMIC_CONTROL]))
        auditor = Account.create()
        consortium.govern(governance.admit_member(auditor.address, Role.AUDITOR, "audit office"))
        yield Fleet(consortium, auditor)
    finally:
        consortium.stop()


class GatewayApiMachine(RuleBasedStateMachine):
    """Random API calls by subjects, requesters and the custodian, each checked against the model."""

    def __init__(self, fleet: Fleet, tally: Counter[str]) -> None:
        super().__init__()
        self.fleet = fleet
        self.c = fleet.consortium
        self.tally = tally
        self.subjects = {name: Account.create() for name in SUBJECTS}  # fresh people: examples never meet
        self.erased: set[str] = set()
        self.records: list[RecordModel] = []
        self.consents: list[ConsentModel] = []
        self.ingested = 0

    # -- rules -------------------------------------------------------------------------------------

    # One initializer: hypothesis runs several in an order that varies from process to process.
    @initialize(first=st.sampled_from(SUBJECTS), second=st.sampled_from(SUBJECTS),
                category=st.sampled_from((LAB_RESULT, VISIT_LOG)))
    def first_records(self, first: str, second: str, category: int) -> None:
        """Every example starts with a contact trace and a lab result or an open visit log to ask for."""
        self._ingest(first, CONTACT_TRACE)
        self._ingest(second, category)

    @precondition(lambda self: len(self.records) < MAX_RECORDS)
    @rule(subject=st.sampled_from(SUBJECTS), category=st.sampled_from((CONTACT_TRACE, LAB_RESULT, VISIT_LOG)))
    def ingest(self, subject: str, category: int) -> None:
        """The custodian collects a record of a subject (one not erased: erasure ends the relationship)."""
        if subject in self.erased:
            subject = next(s for s in SUBJECTS if s not in self.erased)
        self._ingest(subject, category)

    @rule(pick=st.integers(0, 63), grantee=st.sampled_from(REQUESTERS), scoped=st.booleans(),
          max_uses=st.integers(1, 3), identified=st.booleans())
    def grant(self, pick: int, grantee: str, scoped: bool, max_uses: int, identified: bool) -> None:
        """A subject consents to a requester using one of their records (or its whole category)."""
        self._grant(pick, grantee, scoped, max_uses, identified)

    @rule(pick=st.integers(0, 63), grantee=st.sampled_from(REQUESTERS), max_uses=st.integers(1, 3),
          identified=st.booleans())
    def grant_and_use(self, pick: int, grantee: str, max_uses: int, identified: bool) -> None:
        """A subject consents to a requester for one record, and the requester uses it at once."""
        consent = self._grant(pick, grantee, True, max_uses, identified)
        if consent is not None:
            self._access(next(r for r in self.records if r.raw == consent.terms.record), grantee, consent)

    @precondition(lambda self: bool(self.consents))
    @rule(pick=st.integers(0, 63), requester=st.sampled_from(REQUESTERS), consent_pick=st.integers(0, 63))
    def access_under_any_consent(self, pick: int, requester: str, consent_pick: int) -> None:
        """A requester asks for a record under a consent, often the wrong one."""
        target = self.records[pick % len(self.records)]
        self._access(target, requester, self.consents[consent_pick % len(self.consents)])

    @rule(pick=st.integers(0, 63), requester=st.sampled_from(REQUESTERS))
    def access_without_consent(self, pick: int, requester: str) -> None:
        """A requester asks for a record presenting no consent (only an OPEN record allows it)."""
        self._access(self.records[pick % len(self.records)], requester, None)

    @precondition(lambda self: bool(self.consents))
    @rule(pick=st.integers(0, 63))
    def access_as_the_consent_intends(self, pick: int) -> None:
        """The grantee asks for the record its consent names (or a record of its subject in the category)."""
        consent = self.consents[pick % len(self.consents)]
        covered = [r for r in self.records if r.subject == consent.subject and r.category == consent.terms.category
                   and consent.terms.record in (NO_RECORD, r.raw)]
        self._access(covered[pick % len(covered)], consent.grantee, consent)

    @precondition(lambda self: any(not c.revoked for c in self.consents))
    @rule(pick=st.integers(0, 63))
    def revoke(self, pick: int) -> None:
        """A subject revokes one of their live consents through its grantee's gateway."""
        live = [c for c in self.consents if not c.revoked]
        consent = live[pick % len(live)]
        account, domain = self.subjects[consent.subject], self.c.ledger.domain()
        signature = sign_revocation(consent_id(consent.terms, domain), account.key, domain)
        body = {"consent": consent.terms.to_json(), "signature": "0x" + signature.hex()}
        answer = expect(signed(self.c.agencies[consent.grantee], account.key, "POST", "/v1/consents/revoke", body),
                        200)
        assert answer["status"] == "revoked", answer
        consent.revoked = True
        self.tally["revoked"] += 1

    @precondition(lambda self: not self.erased)
    @rule(subject=st.sampled_from(SUBJECTS))
    def erase(self, subject: str) -> None:
        """A subject has the custodian erase them: their records shredded and tombstoned, their consents revoked.

        One erasure an example: it ends most of what can happen to its subject next.
        """
        account = self.subjects[subject]
        mine = [r for r in self.records if r.subject == subject]
        live_consents = {"0x" + consent_id(c.terms, self.c.ledger.domain()).hex()
                         for c in self.consents if c.subject == subject and not c.revoked}
        with GatewayClient(self.c.health.url, account) as client:
            # The erasure revokes what the custodian's index lists: let it catch up with the last grants.
            eventually(client.my_consents, lambda a: {i["id"] for i in a["consents"]} == live_consents,
                       what=f"{subject}'s consents indexed at health")
            answer = client.request_erasure()
        assert answer["subject"] == account.address
        live = [r for r in mine if r.destroyed is None]
        assert sorted(r["record"] for r in answer["records"] if r["shredded_now"]) == sorted(r.id for r in live)
        for record in live:
            eventually(lambda r=record: tombstones_on_chain(self.c.ledger, r.id), lambda t: t == [
                TombstoneReason.ERASURE], what=f"{record.id} tombstoned")
            record.destroyed = "erasure"
            self._check_shown(record)
        for consent in self.consents:
            if consent.subject == subject and not consent.revoked:
                cid = consent_id(consent.terms, self.c.ledger.domain())
                eventually(lambda i=cid: self.c.ledger.consent_state(i)[0], lambda s: s is ConsentStatus.REVOKED,
                           what="revoked by the erasure")
                consent.revoked = True
        self.erased.add(subject)
        self.tally["erased"] += 1

    @precondition(lambda self: any(r.category == VISIT_LOG and r.destroyed is None for r in self.records))
    @rule()
    def sweep(self) -> None:
        """Time passes beyond the visit logs' retention; the custodian's sweep shreds and tombstones them."""
        due = [r for r in self.records if r.category == VISIT_LOG and r.destroyed is None]
        w3 = self.c.ledger.w3
        ahead = max(r.retain_until for r in due) + 1 - self._chain_time()
        if ahead > 0:
            w3.provider.make_request("evm_increaseTime", [ahead])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        health = self.c.health
        report = expect(signed(health, self.c.key(health), "POST", "/v1/sweep", {}), 200)
        shredded = {(s["record"], s["reason"]) for s in report["shredded"]}
        assert {(r.id, "retention") for r in due} <= shredded, report
        assert not {r.id for r in self.records if r not in due} & {s for s, _ in shredded}, report
        for record in due:
            eventually(lambda r=record: tombstones_on_chain(self.c.ledger, r.id), lambda t: t == [
                TombstoneReason.RETENTION], what=f"{record.id} tombstoned")
            record.destroyed = "retention"
            self._check_shown(record)
        self.tally["swept"] += 1

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def chain_and_custodian_agree_with_the_model(self) -> None:
        """Entries, releases, hash chains, consent uses and ciphertexts are what the answers said."""
        ids = [r.id for r in self.records]
        with self.c.store(self.c.health).engine.connect() as conn:
            released = Counter(
                (row.record_id, row.seq, row.requester)
                for row in conn.execute(select(releases.c.record_id, releases.c.seq, releases.c.requester)
                                        .where(releases.c.record_id.in_(ids)))
            )
            sizes = {row.record_id: (row.state, row.size) for row in conn.execute(
                select(records.c.record_id, records.c.state, func.length(records.c.ciphertext).label("size"))
                .where(records.c.record_id.in_(ids)))}
        for record in self.records:
            entries = self.c.accesses(record.id)
            served = {seq: self.c.agencies[name].address for seq, name in record.served.items()}
            assert {e.seq: e.requester for e in entries} == served, (record.id, entries, record.served)
            assert {(seq, who): n for (rid, seq, who), n in released.items() if rid == record.id} == {
                (seq, who): 1 for seq, who in served.items()}, (record.id, released)
            check = check_record_chain(self.c.ledger, record.raw, entries=entries)
            assert check.ok, check.problems
            state, size = sizes[record.id]
            if record.destroyed is None:
                assert (state, size > 0) == ("registered", True), (record.id, state, size)
            else:
                assert (state, size) == ("shredded", 0), (record.id, state, size)
        domain = self.c.ledger.domain()
        for consent in self.consents:
            status, uses = self.c.ledger.consent_state(consent_id(consent.terms, domain))
            want = ConsentStatus.REVOKED if consent.revoked else ConsentStatus.GRANTED
            assert (status, uses) == (want, consent.uses), (consent.terms, status, uses)

    def teardown(self) -> None:
        """Each record reads live or gone with its reason; the auditor's `audit verify` finds nothing wrong."""
        for record in self.records:
            self._check_shown(record)
        with GatewayClient(self.c.health.url, self.fleet.auditor) as client:
            report = eventually(client.audit_verify, lambda r: bool(r["ok"]), what="audit verify ok")
        assert not report["discrepancies"], report

    # -- helpers -----------------------------------------------------------------------------------

    def _ingest(self, subject: str, category: int) -> None:
        self.ingested += 1
        n = self.ingested
        payload: dict[str, Any] = {
            CONTACT_TRACE: {"name": f"Person {n}", "phone": f"555-{n:04d}", "district": "North"},
            LAB_RESULT: {"test": "pcr", "result": "positive" if n % 2 else "negative"},
            VISIT_LOG: {"district": "East", "cases": n},
        }[category]
        record = self.c.ingest(payload, category=category, subject=self.subjects[subject].address)
        retain_until = self.c.ledger.record(bytes.fromhex(record[2:])).retain_until
        self.records.append(RecordModel(record, subject, category, payload, retain_until))

    def _grant(self, pick: int, grantee: str, scoped: bool, max_uses: int, identified: bool) -> ConsentModel | None:
        """Relay a consent of a live record's subject for `grantee` (None: no live record to consent to)."""
        live = [r for r in self.records if r.destroyed is None and r.category != VISIT_LOG]
        if not live:
            return None
        target = live[pick % len(live)]
        account = self.subjects[target.subject]
        agency = self.c.agencies[grantee]
        consent = Consent.new(
            subject=account.address, grantee=agency.address, category=target.category, purpose=EPIDEMIC_CONTROL,
            valid_until=self._chain_time() + 86400, max_uses=max_uses, identified=identified,
            record=target.raw if scoped or target.category == LAB_RESULT else NO_RECORD,
        )
        signature = sign_consent(consent, account.key, self.c.ledger.domain())
        body = {"consent": consent.to_json(), "signature": "0x" + signature.hex()}
        expect(signed(agency, account.key, "POST", "/v1/consents", body), 201)
        made = ConsentModel(consent, target.subject, grantee)
        self.consents.append(made)
        return made

    def _access(self, target: RecordModel, requester: str, consent: ConsentModel | None) -> None:
        refusal = self._predict(target, requester, consent)
        response = self.c.access(self.c.agencies[requester], target.id, [consent.terms] if consent else [])
        self.tally[refusal or "served"] += 1
        if refusal is not None:
            expect(response, 403, "rule_violated", refusal)
            return
        answer = expect(response, 200)
        identified = consent is not None and consent.terms.identified
        withheld = () if identified else IDENTIFYING[target.category]
        assert answer["payload"] == {k: v for k, v in target.payload.items() if k not in withheld}, answer
        assert answer["record"] == target.id and answer["seq"] not in target.served, answer
        target.served[answer["seq"]] = requester
        if consent is not None:
            consent.uses += 1

    def _predict(self, target: RecordModel, requester: str, consent: ConsentModel | None) -> str | None:
        """Return the rule refusing the access (in AccessLedger's order of checks), or None: served."""
        if target.destroyed is not None:
            return "RecordRegistryRecordTombstoned"
        sensitivity = SENSITIVITY[target.category]
        if consent is None:
            return None if sensitivity is Sensitivity.OPEN else "AccessLedgerConsentCountMismatch"
        terms = consent.terms
        if consent.revoked:
            return "ConsentRegistryConsentRevoked"
        if consent.grantee != requester:
            return "ConsentRegistryWrongGrantee"
        if terms.category != target.category or terms.record not in (NO_RECORD, target.raw):
            return "ConsentRegistryWrongScope"
        if sensitivity is Sensitivity.PROTECTED and terms.record != target.raw:
            return "ConsentRegistryRecordScopeRequired"
        if consent.uses >= (1 if sensitivity is Sensitivity.ONE_TIME else terms.max_uses):
            return "ConsentRegistryConsentExhausted"
        if consent.subject != target.subject:
            return "ConsentRegistryWrongSubject"
        return None

    def _check_shown(self, record: RecordModel) -> None:
        """The custodian's record endpoint shows `record` live, or gone (410) with why."""
        health = self.c.health
        response = signed(health, self.c.key(health), "GET", f"/v1/records/{record.id}")
        if record.destroyed is None:
            assert expect(response, 200)["state"] == "registered"
        else:
            assert expect(response, 410, "record_destroyed")["reason"] == record.destroyed

    def _chain_time(self) -> int:
        return int(self.c.ledger.w3.eth.get_block("latest")["timestamp"])


def test_gateway_api_agrees_with_the_model_after_every_step(fleet: Fleet) -> None:
    """Random sequences of API calls: every answer is the model's, and the invariants hold after each step."""
    tally: Counter[str] = Counter()
    started = time.monotonic()
    run_state_machine_as_test(lambda: GatewayApiMachine(fleet, tally), settings=SETTINGS)
    assert tally["served"] > 0, tally
    assert len([k for k in tally if k.startswith(("Record", "Access", "Consent"))]) >= 3, tally
    print(f"stateful API run: {dict(tally)} in {time.monotonic() - started:.0f} s")

