"""The session chain's cast, records and the `Net` helper that contract tests drive it through.

`build_session` deploys the contracts with three admins (2-of-3), runs the governance that sets up
the catalog and the members, registers a few records, and takes a chain snapshot.

Gas is estimated with a single run instead of py-evm's bisection, which made estimation most of
every test's time (`single_run_gas_estimate`).

The chain clock is moved a day ahead of the wall clock first: py-evm stamps a block with
max(wall clock, parent + 1), so from then on every block is exactly its parent + 1 s and a test
knows the timestamp its next transaction will carry (`Net.next_time`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import SignedTransactionAPI, StateAPI
from eth.vm.spoof import SpoofTransaction
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3 import EthereumTesterProvider, Web3
from web3.contract.contract import ContractEvent
from web3.types import TxReceipt

from consentledger import governance as gov
from consentledger.attestation import RecordAttestation, sign_attestation
from consentledger.chain.compile import ContractArtifact, compile_contracts
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import Deployment
from consentledger.chain.sender import TransactionSender
from consentledger.consent import NO_RECORD, Consent, sign_consent
from consentledger.errors import ContractRevertError
from consentledger.governance import ProposedAction
from consentledger.types import AccessEntry, ActorId, Role, Sensitivity

DAY = 86_400
EPIDEMIC, RESEARCH = 1, 2
CONTACT_TRACE, LAB_RESULT, DISTRICT_STATS = 1, 2, 3
RETENTION = {CONTACT_TRACE: 30 * DAY, LAB_RESULT: 90 * DAY, DISTRICT_STATS: 365 * DAY}
VOTING_PERIOD = 7 * DAY
AGGREGATE_K = 2
"""District statistics may be registered as anonymous aggregates over at least 2 distinct subjects."""

Party = LocalAccount | TransactionSender | str


def address_of(party: Party) -> str:
    """Return the checksummed address of an account, a sender or an address string."""
    if isinstance(party, TransactionSender):
        return party.address
    if isinstance(party, str):
        return to_checksum_address(party)
    return str(party.address)


def rule_args(error: ContractRevertError) -> tuple[Any, ...]:
    """Return a revert's arguments with addresses checksummed (eth_abi decodes them lower-case)."""
    return tuple(
        to_checksum_address(a) if isinstance(a, str) and len(a) == 42 and a.startswith("0x") else a
        for a in error.rule_args
    )


def hex32(value: bytes) -> str:
    """Return 32 bytes as the 0x-hex string a decoded revert carries."""
    return "0x" + value.hex()


def record_id(name: str) -> bytes:
    """Return a deterministic 32-byte record id for a test name."""
    return keccak(text=f"record:{name}")


def commitment_of(name: str) -> bytes:
    """Return a deterministic non-zero commitment for a test record."""
    return keccak(text=f"commitment:{name}")


@dataclass(frozen=True)
class Cast:
    """Everyone on the session chain, each with a funded key."""

    admins: tuple[LocalAccount, LocalAccount, LocalAccount]
    health: LocalAccount  # CUSTODIAN
    transport: LocalAccount  # REQUESTER
    police: LocalAccount  # REQUESTER
    auditor: LocalAccount  # AUDITOR
    outsider: LocalAccount  # never admitted
    alice: LocalAccount  # data subjects
    bob: LocalAccount
    carol: LocalAccount


@dataclass(frozen=True)
class Records:
    """Records registered by `health` during setup."""

    contact: bytes  # CONTACT_TRACE (ONE_TIME), subject alice
    lab: bytes  # LAB_RESULT (PROTECTED), subject alice
    lab_bob: bytes  # LAB_RESULT (PROTECTED), subject bob
    stats: bytes  # DISTRICT_STATS (OPEN), subject bob


@dataclass(frozen=True)
class Session:
    """The deployed, governed session chain and the snapshot every test starts from."""

    w3: Web3
    deployment: Deployment
    artifacts: dict[str, ContractArtifact]
    cast: Cast
    records: Records
    snapshot: Any


class Net:
    """A test's view of the session chain: a fresh Ledger, a sender per party, and helpers."""

    def __init__(self, session: Session) -> None:
        self.w3 = session.w3
        self.cast = session.cast
        self.records = session.records
        self.ledger = Ledger(session.w3, session.deployment, session.artifacts)
        self.tester = session.w3.provider.ethereum_tester  # type: ignore[attr-defined]
        cast = session.cast
        self.admin0, self.admin1, self.admin2 = (self.ledger.sender(a) for a in cast.admins)
        self.health = self.ledger.sender(cast.health)
        self.transport = self.ledger.sender(cast.transport)
        self.police = self.ledger.sender(cast.police)
        self.auditor = self.ledger.sender(cast.auditor)
        self.outsider = self.ledger.sender(cast.outsider)
        self.alice = self.ledger.sender(cast.alice)
        self.bob = self.ledger.sender(cast.bob)
        self.carol = self.ledger.sender(cast.carol)
        self._keys = {
            a.address: a
            for a in (*cast.admins, cast.health, cast.transport, cast.police, cast.auditor,
                      cast.outsider, cast.alice, cast.bob, cast.carol)
        }

    # ------------------------------------------------------------------ time

    def now(self) -> int:
        """Return the timestamp of the latest mined block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def next_time(self) -> int:
        """Return the timestamp the next transaction's block will carry."""
        return self.now() + 1

    def travel_to(self, timestamp: int) -> None:
        """Move the clock so the next transaction is mined at exactly `timestamp`."""
        self.tester.time_travel(timestamp)
        assert self.next_time() == timestamp

    # ------------------------------------------------------------------ governance

    def propose(self, proposed: ProposedAction) -> int:
        """Have admin0 propose `proposed` (1 of the 2 approvals needed) and return its id."""
        proposal, ran = self.ledger.propose(self.admin0, proposed)
        assert not ran
        return proposal

    def govern(self, proposed: ProposedAction) -> int:
        """Run `proposed` through 2-of-3 governance (admin0 proposes, admin1 approves)."""
        proposal, ran = self.ledger.propose(self.admin0, proposed)
        assert not ran
        assert self.ledger.approve(self.admin1, proposal)
        return proposal

    def suspend(self, party: Party) -> None:
        """Suspend a member through governance."""
        self.govern(gov.suspend_member(address_of(party)))

    def reinstate(self, party: Party) -> None:
        """Reinstate a suspended member through governance."""
        self.govern(gov.reinstate_member(address_of(party)))

    # ------------------------------------------------------------------ records

    def register(
        self,
        name: str,
        subject: Party | None,
        category: int,
        derived_from: Sequence[bytes] = (),
        custodian: TransactionSender | None = None,
    ) -> bytes:
        """Register record `name` (held by health unless told) and return its id."""
        rid = record_id(name)
        self.ledger.register_record(
            custodian or self.health, rid, address_of(subject) if subject else "", category,
            commitment_of(name), derived_from,
        )
        return rid

    def attestation(self, record: bytes, signer: Party | None = None) -> bytes:
        """Return `signer`'s (by default the record's subject's) EIP-712 attestation of `record`'s terms."""
        info = self.ledger.record(record)
        key = self.key_of(signer or info.subject).key
        return sign_attestation(RecordAttestation.of(info), key, self.ledger.domain())

    def attest(self, *records: bytes, relayer: TransactionSender | None = None) -> None:
        """Relay each record's subject-signed attestation (by admin2 unless told)."""
        for record in records:
            self.ledger.attest_record(relayer or self.admin2, record, self.attestation(record))

    # ------------------------------------------------------------------ consents

    def consent(
        self,
        subject: Party,
        grantee: Party,
        category: int,
        purpose: int,
        *,
        record: bytes = NO_RECORD,
        max_uses: int = 1,
        valid_for: int = DAY,
        identified: bool = False,
    ) -> Consent:
        """Return fresh consent terms valid `valid_for` seconds from the next block."""
        return Consent.new(
            subject=address_of(subject), grantee=address_of(grantee), category=category,
            purpose=purpose, record=record, max_uses=max_uses,
            valid_until=self.next_time() + valid_for, identified=identified,
        )

    def key_of(self, party: Party) -> LocalAccount:
        """Return the account holding the key of `party`."""
        return self._keys[address_of(party)]

    def sign(self, consent: Consent, signer: Party | None = None) -> bytes:
        """Return `signer`'s (by default the subject's) EIP-712 signature over `consent`."""
        key = self.key_of(signer or consent.subject).key
        return sign_consent(consent, key, self.ledger.domain())

    def grant(
        self,
        consent: Consent,
        *,
        signature: bytes | None = None,
        relayer: TransactionSender | None = None,
    ) -> bytes:
        """Relay the subject-signed `consent` (by admin2 unless told) and return its id."""
        return self.ledger.grant_consent(
            relayer or self.admin2, consent, signature or self.sign(consent)
        )

    def access(
        self,
        requester: TransactionSender,
        record: bytes,
        purpose: int,
        consents: Sequence[Consent] = (),
        actor: bytes = bytes(32),
    ) -> AccessEntry:
        """Request an access (on behalf of `actor`) and return the appended hash-chain entry."""
        return self.ledger.request_access(requester, record, purpose, consents, actor=ActorId(actor))

    # ------------------------------------------------------------------ events

    def events(self, event: ContractEvent, receipt: TxReceipt) -> list[dict[str, Any]]:
        """Return the decoded args of every `event` log in `receipt`."""
        logs = [log for log in receipt["logs"] if log["address"] == event.address]
        decoded = []
        for log in logs:
            try:
                decoded.append(dict(event.process_log(log)["args"]))
            except Exception:  # another event of the same contract
                continue
        return decoded

    def events_since(self, event: ContractEvent, block: int) -> list[dict[str, Any]]:
        """Return the decoded args of every `event` emitted from `block` on, in order."""
        logs = event.get_logs(from_block=block)
        ordered = sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
        return [dict(e["args"]) for e in ordered]


def _funded_accounts(w3: Web3) -> Cast:
    keys = w3.provider.ethereum_tester.backend.account_keys  # type: ignore[attr-defined]
    tester = [Account.from_key(k.to_bytes()) for k in keys]
    carol = Account.from_key(keccak(text="consentledger tests: carol"))
    w3.eth.send_transaction({"from": tester[0].address, "to": carol.address, "value": 10**21})
    return Cast(
        admins=(tester[0], tester[1], tester[2]),
        health=tester[3], transport=tester[4], police=tester[5], auditor=tester[6],
        outsider=tester[7], alice=tester[8], bob=tester[9], carol=carol,
    )


def _setup_governance(ledger: Ledger, cast: Cast) -> None:
    admin0, admin1 = ledger.sender(cast.admins[0]), ledger.sender(cast.admins[1])
    actions = [
        gov.add_purpose(EPIDEMIC, "epidemic-control"),
        gov.add_purpose(RESEARCH, "research"),
        gov.add_category(
            CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME, RETENTION[CONTACT_TRACE],
            ["name", "phone", "district"], ["name", "phone"], [EPIDEMIC],
        ),
        gov.add_category(
            LAB_RESULT, "lab-result", Sensitivity.PROTECTED, RETENTION[LAB_RESULT],
            ["subject", "test", "result"], ["subject"], [EPIDEMIC, RESEARCH],
        ),
        gov.add_category(
            DISTRICT_STATS, "district-stats", Sensitivity.OPEN, RETENTION[DISTRICT_STATS],
            ["district", "cases"], [], [EPIDEMIC, RESEARCH], min_aggregate_subjects=AGGREGATE_K,
        ),
        *(
            gov.admit_member(account.address, role, name, bytes([n]) * 32, f"http://{name}")
            for n, (account, role, name) in enumerate([
                (cast.health, Role.CUSTODIAN, "health"),
                (cast.transport, Role.REQUESTER, "transport"),
                (cast.police, Role.REQUESTER, "police"),
                (cast.auditor, Role.AUDITOR, "auditor"),
            ], start=1)
        ),
    ]
    for action in actions:
        proposal, ran = ledger.propose(admin0, action)
        assert not ran
        assert ledger.approve(admin1, proposal)


def _setup_records(ledger: Ledger, cast: Cast) -> Records:
    health = ledger.sender(cast.health)
    records = Records(
        contact=record_id("contact"), lab=record_id("lab"), lab_bob=record_id("lab-bob"),
        stats=record_id("stats"),
    )
    for name, rid, subject, category in [
        ("contact", records.contact, cast.alice, CONTACT_TRACE),
        ("lab", records.lab, cast.alice, LAB_RESULT),
        ("lab-bob", records.lab_bob, cast.bob, LAB_RESULT),
        ("stats", records.stats, cast.bob, DISTRICT_STATS),
    ]:
        ledger.register_record(health, rid, subject.address, category, commitment_of(name))
    return records


def single_run_gas_estimate(state: StateAPI, transaction: SignedTransactionAPI) -> int:
    """Estimate gas from one run at the block gas limit (py-evm's default bisects ~12 runs).

    Reverts surface exactly as with the default estimator. The sender adds its own margin, and
    1/63 more covers the gas a nested call must leave behind (EIP-150).
    """
    at_limit = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(at_limit)
        if computation.is_error:
            raise computation.error
        return transaction.intrinsic_gas + computation.get_gas_used() * 64 // 63
    finally:
        state.revert(snapshot)


def build_session() -> Session:
    """Deploy (2-of-3 admins), govern the catalog and members in, register records, snapshot."""
    w3 = Web3(EthereumTesterProvider())
    tester = w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tester.backend.chain.gas_estimator = single_run_gas_estimate
    tester.time_travel(int(w3.eth.get_block("latest")["timestamp"]) + DAY)
    cast = _funded_accounts(w3)
    artifacts = compile_contracts()
    ledger = deploy(
        w3, cast.admins[0], [a.address for a in cast.admins], 2,
        admin_names=["ministry", "city", "province"], artifacts=artifacts,
    )
    _setup_governance(ledger, cast)
    records = _setup_records(ledger, cast)
    return Session(w3, ledger.deployment, artifacts, cast, records, w3.testing.snapshot())
