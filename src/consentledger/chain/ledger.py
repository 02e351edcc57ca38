"""Typed bindings over one deployment: reads return our value types, writes go through a sender."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BlockNotFound, Web3Exception
from web3.logs import DISCARD
from web3.types import BlockIdentifier, TxReceipt

from consentledger.chain.access_logs import ACCESS_RECORDED_TOPIC, entry_from_log
from consentledger.chain.batch import AccessRequest, batch_call, batch_gas_limit, batch_outcomes
from consentledger.chain.compile import ContractArtifact, compile_contracts
from consentledger.chain.connect import unreachable_reason
from consentledger.chain.manifest import Deployment
from consentledger.chain.nonces import NonceAllocator
from consentledger.chain.params import ChainParams
from consentledger.chain.reverts import RevertDecoder, revert_data
from consentledger.chain.sender import TransactionSender
from consentledger.chain.watcher import ReceiptWatcher
from consentledger.consent import Consent, Eip712Domain
from consentledger.errors import ChainUnavailableError, ContractRevertError, ManifestError
from consentledger.governance import ProposedAction, purposes_in
from consentledger.types import (
    NO_ACTOR,
    AccessEntry,
    AccessRefusal,
    Action,
    ActorId,
    Address,
    Category,
    ConsentStatus,
    LegalBasis,
    Mandate,
    Member,
    MemberStatus,
    OverridePolicy,
    OverrideState,
    Proposal,
    Purpose,
    RecordId,
    RecordInfo,
    RecordKind,
    ReviewStatus,
    Role,
    Sensitivity,
    TombstoneReason,
)

T = TypeVar("T")


class Ledger:
    """The Consortium and AccessLedger of one deployment, bound to a Web3 connection."""

    def __init__(
        self, w3: Web3, deployment: Deployment, artifacts: dict[str, ContractArtifact] | None = None
    ) -> None:
        artifacts = artifacts or compile_contracts()
        self.w3 = w3
        self.deployment = deployment
        self.consortium: Contract = w3.eth.contract(
            address=to_checksum_address(deployment.address_of("Consortium")), abi=artifacts["Consortium"].abi
        )
        self.access: Contract = w3.eth.contract(
            address=to_checksum_address(deployment.address_of("AccessLedger")), abi=artifacts["AccessLedger"].abi
        )
        self.decoder = RevertDecoder(a.abi for a in artifacts.values())
        self._artifacts = artifacts
        self._nonces = NonceAllocator.for_chain(w3)
        self._params = ChainParams(w3)
        self._watcher = ReceiptWatcher(w3)
        self._domain: Eip712Domain | None = None

    # ------------------------------------------------------------------ plumbing

    def verify(self) -> None:
        """Check the manifest matches this chain and these ABIs; raise ManifestError if not."""
        chain_id = self._read(lambda: self.w3.eth.chain_id)
        if chain_id != self.deployment.chain_id:
            raise ManifestError(f"manifest is for chain {self.deployment.chain_id}, RPC serves chain {chain_id}")
        for name, deployed in self.deployment.contracts.items():
            if deployed.abi_hash != self._artifacts[name].abi_hash:
                raise ManifestError(f"{name} was deployed from other sources (ABI hash differs); redeploy")
            address = to_checksum_address(deployed.address)
            if not self._read(partial(self.w3.eth.get_code, address)):
                raise ManifestError(f"no {name} contract at {deployed.address} on chain {chain_id}")

    def sender(
        self, account: LocalAccount, *, confirmations: int = 0, max_pending: int | None = None,
        nonces: NonceAllocator | None = None,
    ) -> TransactionSender:
        """Return a transaction sender for `account` sharing this ledger's nonces, chain values and receipt watcher.

        `max_pending` bounds the signer's pending transactions (None: no bound); see TransactionSender.
        `nonces` replaces the ledger's own allocator (e.g. one shared by replicas, `chain.shared_nonces`).
        """
        return TransactionSender(
            self.w3, account, self.decoder, nonces=nonces or self._nonces, confirmations=confirmations,
            watcher=self._watcher, params=self._params, max_pending=max_pending,
        )

    def close(self) -> None:
        """Stop the receipt watcher's thread (transactions still awaited fail with TransactionNotMinedError)."""
        self._watcher.close()

    def _read(self, fetch: Callable[[], T]) -> T:
        try:
            return fetch()
        except Exception as exc:
            data = revert_data(exc)
            if data is not None:
                raise self.decoder.decode(data) from exc
            if isinstance(exc, (OSError, Web3Exception)):
                raise ChainUnavailableError(f"chain read failed: {unreachable_reason(exc)}") from exc
            raise

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Return the result of a raw JSON-RPC call, as the node sends it (its errors as ChainUnavailableError)."""

        def fetch() -> Any:
            response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
            if "error" in response:
                raise ChainUnavailableError(f"{method} failed: {response['error']}")
            return response.get("result")

        return self._read(fetch)

    def block_number(self) -> int:
        """Return the latest block number."""
        return int(self._read(lambda: self.w3.eth.block_number))

    def consortium_logs(self, event_names: Sequence[str], from_block: int, to_block: int) -> list[Any]:
        """Return the decoded Consortium events of the given names in a block range."""
        logs: list[Any] = []
        for name in event_names:
            event = getattr(self.consortium.events, name)()
            logs.extend(self._read(partial(event.get_logs, from_block=from_block, to_block=to_block)))
        return logs

    def access_entries(
        self, from_block: int, to_block: int, *, records: Sequence[bytes] = (), seqs: Sequence[int] = ()
    ) -> list[AccessEntry]:
        """Return the AccessRecorded entries mined in blocks `from_block`..`to_block` (one `eth_getLogs`).

        Only those of `records` and of `seqs` when given (each list matches any of its values).
        """
        topics: list[Any] = [
            "0x" + ACCESS_RECORDED_TOPIC.hex(),
            ["0x" + seq.to_bytes(32, "big").hex() for seq in sorted(set(seqs))] or None,
            ["0x" + bytes(record).hex() for record in dict.fromkeys(bytes(r) for r in records)] or None,
        ]
        query: Any = {"address": self.access.address, "fromBlock": from_block, "toBlock": to_block, "topics": topics}
        return [entry_from_log(log) for log in self._read(partial(self.w3.eth.get_logs, query))]

    def followed_events(
        self, consortium_events: Sequence[str], access_events: Sequence[str], from_block: int, to_block: int
    ) -> list[Any]:
        """Return the decoded events of these names of both contracts in a block range, in chain order.

        One `eth_getLogs` over both addresses, whatever the number of event kinds; the caller keeps
        the range within the node's limit (Besu: `--rpc-max-logs-range`, 5,000 blocks by default).
        """
        wanted: dict[tuple[str, str], Any] = {}
        for contract, names in ((self.consortium, consortium_events), (self.access, access_events)):
            for name in names:
                event = getattr(contract.events, name)()
                wanted[(contract.address, str(event.topic).lower())] = event
        query: Any = {
            "address": [self.consortium.address, self.access.address], "fromBlock": from_block, "toBlock": to_block,
            "topics": [sorted({topic for _, topic in wanted})],
        }
        decoded = []
        for log in self._read(partial(self.w3.eth.get_logs, query)):
            event = wanted.get((to_checksum_address(log["address"]), "0x" + bytes(log["topics"][0]).hex()))
            if event is not None:
                decoded.append(event.process_log(log))
        return sorted(decoded, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))

    def latest_block(self) -> tuple[int, int, bytes]:
        """Return the latest block's number, timestamp and hash, read together (one `eth_getBlockByNumber`)."""
        block = self._read(lambda: self.w3.eth.get_block("latest"))
        return int(block["number"]), int(block["timestamp"]), bytes(block["hash"])

    def block_hash(self, number: int) -> bytes | None:
        """Return the hash of block `number` on the chain as it is now (None if the chain is shorter)."""

        def fetch() -> bytes | None:
            try:
                return bytes(self.w3.eth.get_block(number)["hash"])
            except BlockNotFound:
                return None

        return self._read(fetch)

    # ------------------------------------------------------------------ consortium reads

    def member(self, account: str) -> Member:
        """Return the member record of `account` (status NONE if unknown)."""
        address = to_checksum_address(account)
        roles, status, since, key, name, url = self._read(self.consortium.functions.member(address).call)
        return Member(Address(address), Role(roles), MemberStatus(status), since, bytes(key), name, url)

    def current_signer(self, account: str) -> Address:
        """Return the signer `account` has rotated to through governance (itself if it never rotated)."""
        address = to_checksum_address(account)
        return Address(to_checksum_address(self._read(self.consortium.functions.currentSigner(address).call)))

    def mandate(self, mandate_id: int) -> Mandate:
        """Return statutory mandate `mandate_id` (LegalBasesUnknownMandate if none)."""
        (institution, purpose, identified, revoked, valid_until, text_hash, categories, uri) = self._read(
            self.consortium.functions.mandate(mandate_id).call
        )
        return Mandate(mandate_id, Address(institution), int(purpose), tuple(int(c) for c in categories),
                       int(valid_until), bool(identified), bool(revoked), bytes(text_hash), uri)

    def mandates(self) -> list[Mandate]:
        """Return every mandate ever granted, in id order."""
        return [self.mandate(i) for i in range(1, int(self._read(self.consortium.functions.mandateCount().call)) + 1)]

    def override_policy(self) -> OverridePolicy:
        """Return the consortium's emergency-override policy."""
        purposes, review_period, max_overrides, rate_window = self._read(
            self.consortium.functions.overridePolicy().call
        )
        return OverridePolicy(purposes_in(purposes), int(review_period), int(max_overrides), int(rate_window))

    def members(self) -> list[Member]:
        """Return every member ever admitted, in admission order."""
        return [self.member(a) for a in self._read(self.consortium.functions.members().call)]

    def threshold(self) -> int:
        """Return how many admin approvals a proposal needs."""
        return int(self._read(self.consortium.functions.threshold().call))

    def proposal(self, proposal_id: int) -> Proposal:
        """Return proposal `proposal_id`."""
        action, approvals, executed, deadline, proposer, payload = self._read(
            self.consortium.functions.proposal(proposal_id).call
        )
        return Proposal(proposal_id, Action(action), approvals, executed, deadline, Address(proposer), bytes(payload))

    def proposals(self) -> list[Proposal]:
        """Return every proposal, oldest first."""
        count = self._read(self.consortium.functions.proposalCount().call)
        return [self.proposal(i) for i in range(1, count + 1)]

    def has_approved(self, proposal_id: int, admin: str) -> bool:
        """Return whether `admin` approved proposal `proposal_id`."""
        return bool(
            self._read(self.consortium.functions.hasApproved(proposal_id, to_checksum_address(admin)).call)
        )

    def category(self, category_id: int) -> Category:
        """Return category `category_id` of the positive list."""
        cid, sensitivity, retention, min_subjects, allowed, name, fields, identifying = self._read(
            self.consortium.functions.category(category_id).call
        )
        return Category(
            cid, name, Sensitivity(sensitivity), retention, min_subjects, purposes_in(allowed),
            tuple(fields), tuple(identifying),
        )

    def categories(self) -> list[Category]:
        """Return every category, in the order added."""
        return [self.category(c) for c in self.category_ids()]

    def category_ids(self) -> tuple[int, ...]:
        """Return the id of every category, in the order added."""
        return tuple(int(c) for c in self._read(self.consortium.functions.categoryIds().call))

    def purpose(self, purpose_id: int) -> Purpose:
        """Return purpose `purpose_id`."""
        pid, sunset, name = self._read(self.consortium.functions.purpose(purpose_id).call)
        return Purpose(pid, name, sunset)

    def purposes(self) -> list[Purpose]:
        """Return every purpose, in the order added."""
        return [self.purpose(p) for p in self.purpose_ids()]

    def purpose_ids(self) -> tuple[int, ...]:
        """Return the id of every purpose, in the order added."""
        return tuple(int(p) for p in self._read(self.consortium.functions.purposeIds().call))

    # ------------------------------------------------------------------ ledger reads

    def domain(self) -> Eip712Domain:
        """Return the ledger's EIP-712 domain, read with EIP-5267 `eip712Domain()`."""
        if self._domain is None:
            _, name, version, chain_id, contract, _, _ = self._read(self.access.functions.eip712Domain().call)
            self._domain = Eip712Domain(name, version, chain_id, to_checksum_address(contract))
        return self._domain

    def latest_block_time(self) -> int:
        """Return the timestamp of the latest block: the time the contracts judge expiry by."""
        return int(self._read(lambda: self.w3.eth.get_block("latest")["timestamp"]))

    def record(self, record_id: bytes) -> RecordInfo:
        """Return what the chain knows of record `record_id`."""
        (custodian, subject, category, created, retain_until, tombstone, commitment, sources, accesses, kind,
         attested) = self._read(self.access.functions.record(record_id).call)
        return RecordInfo(
            RecordId(bytes(record_id)), Address(custodian), Address(subject), category, created, retain_until,
            TombstoneReason(tombstone), bytes(commitment), tuple(RecordId(bytes(s)) for s in sources), accesses,
            RecordKind(kind), bool(attested),
        )

    def head(self, record_id: bytes, *, block: BlockIdentifier = "latest") -> bytes:
        """Return the head of the record's access hash chain at `block` (32 zero bytes before any access)."""
        return bytes(self._read(partial(self.access.functions.head(record_id).call, block_identifier=block)))

    def consent_state(self, consent_id: bytes) -> tuple[ConsentStatus, int]:
        """Return a consent's status and use count."""
        status, uses = self._read(self.access.functions.consentState(consent_id).call)
        return ConsentStatus(status), int(uses)

    # ------------------------------------------------------------------ governance writes

    def propose(self, sender: TransactionSender, proposed: ProposedAction) -> tuple[int, bool]:
        """Propose an action; return (proposal id, whether it already ran)."""
        receipt = sender.transact(self.consortium.functions.propose(int(proposed.action), proposed.payload))
        (created,) = self.consortium.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)
        return int(created["args"]["proposal"]), self._executed_in(receipt)

    def approve(self, sender: TransactionSender, proposal_id: int) -> bool:
        """Approve a proposal; return whether this approval made it run."""
        return self._executed_in(sender.transact(self.consortium.functions.approve(proposal_id)))

    def execute(self, sender: TransactionSender, proposal_id: int) -> None:
        """Run a proposal that already has enough approvals."""
        sender.transact(self.consortium.functions.execute(proposal_id))

    def _executed_in(self, receipt: TxReceipt) -> bool:
        return bool(self.consortium.events.ProposalExecuted().process_receipt(receipt, errors=DISCARD))

    # ------------------------------------------------------------------ record, consent, access writes

    def register_record(
        self,
        sender: TransactionSender,
        record_id: bytes,
        subject: str,
        category: int,
        commitment: bytes,
        derived_from: Sequence[bytes] = (),
    ) -> TxReceipt:
        """Register a record held by the sender (an active custodian)."""
        subject_address = to_checksum_address(subject) if subject else "0x" + "00" * 20
        return sender.transact(
            self.access.functions.registerRecord(record_id, subject_address, category, commitment, list(derived_from))
        )

    def check_register_record(
        self,
        sender: TransactionSender,
        record_id: bytes,
        subject: str,
        category: int,
        commitment: bytes,
        derived_from: Sequence[bytes] = (),
    ) -> None:
        """Dry-run `registerRecord` as the sender; raise ContractRevertError naming the rule it would break."""
        subject_address = to_checksum_address(subject) if subject else "0x" + "00" * 20
        sender.call(
            self.access.functions.registerRecord(record_id, subject_address, category, commitment, list(derived_from))
        )

    def register_aggregate(
        self, sender: TransactionSender, record_id: bytes, category: int, commitment: bytes,
        derived_from: Sequence[bytes],
    ) -> TxReceipt:
        """Register an anonymous aggregate of `derived_from` held by the sender (an active custodian)."""
        return sender.transact(
            self.access.functions.registerAggregate(record_id, category, commitment, list(derived_from))
        )

    def check_register_aggregate(
        self, sender: TransactionSender, record_id: bytes, category: int, commitment: bytes,
        derived_from: Sequence[bytes],
    ) -> None:
        """Dry-run `registerAggregate` as the sender; raise ContractRevertError naming the rule it would break."""
        sender.call(self.access.functions.registerAggregate(record_id, category, commitment, list(derived_from)))

    def attest_record(self, sender: TransactionSender, record_id: bytes, signature: bytes) -> TxReceipt:
        """Relay the subject's EIP-712 RecordAttestation signature for `record_id`."""
        return sender.transact(self.access.functions.attestRecord(record_id, signature))

    def check_attest_record(self, sender: TransactionSender, record_id: bytes, signature: bytes) -> None:
        """Dry-run `attestRecord` as the sender; raise ContractRevertError naming the rule it would break."""
        sender.call(self.access.functions.attestRecord(record_id, signature))

    def tombstone(self, sender: TransactionSender, record_id: bytes, reason: TombstoneReason) -> TxReceipt:
        """Mark a record destroyed; only its custodian may."""
        return sender.transact(self.access.functions.tombstone(record_id, int(reason)))

    def grant_consent(
        self, sender: TransactionSender, consent: Consent, signature: bytes,
        *, step: Callable[[str], None] = lambda _: None,
    ) -> bytes:
        """Relay a subject-signed consent; return its id.

        `step` (the gateway's crash hook, `gateway.faults`) is called with "consent-signed" before the
        transaction is broadcast and with "consent-broadcast" before its receipt is awaited.
        """
        call = self.access.functions.grantConsent(consent.as_tuple(), signature)
        pending = sender.submit(call, before_broadcast=lambda _: step("consent-signed"))
        step("consent-broadcast")
        receipt = pending.result()
        (granted,) = self.access.events.ConsentGranted().process_receipt(receipt, errors=DISCARD)
        return bytes(granted["args"]["consent"])

    def revoke_consent(self, sender: TransactionSender, consent: Consent) -> TxReceipt:
        """Revoke a consent directly; the sender must be its subject."""
        return sender.transact(self.access.functions.revokeConsent(consent.as_tuple()))

    def revoke_consent_by_signature(self, sender: TransactionSender, consent: Consent, signature: bytes) -> TxReceipt:
        """Relay a subject-signed revocation."""
        return sender.transact(self.access.functions.revokeConsentBySignature(consent.as_tuple(), signature))

    def request_access(
        self, sender: TransactionSender, record_id: bytes, purpose: int, consents: Sequence[Consent] = (),
        *, actor: ActorId = NO_ACTOR,
    ) -> AccessEntry:
        """Record an access by the sender on behalf of `actor` (its client's pseudonym); return the new entry."""
        receipt = sender.transact(
            self.access.functions.requestAccess(record_id, purpose, actor, [c.as_tuple() for c in consents])
        )
        return self._recorded(receipt)

    def request_access_under_mandate(
        self, sender: TransactionSender, record_id: bytes, purpose: int, mandate_id: int,
        *, actor: ActorId = NO_ACTOR,
    ) -> AccessEntry:
        """Record an access by the sender under statutory mandate `mandate_id` (no consent); return the entry."""
        receipt = sender.transact(
            self.access.functions.requestAccessUnderMandate(record_id, purpose, actor, mandate_id)
        )
        return self._recorded(receipt)

    def request_access_override(
        self, sender: TransactionSender, record_id: bytes, purpose: int, justification: bytes,
        *, actor: ActorId = NO_ACTOR,
    ) -> AccessEntry:
        """Record an emergency override by the sender, `justification` the text's keccak256; return the entry."""
        receipt = sender.transact(
            self.access.functions.requestAccessOverride(record_id, purpose, actor, justification)
        )
        return self._recorded(receipt)

    def review_override(
        self, sender: TransactionSender, record_id: bytes, seq: int, accepted: bool, reason: str,
    ) -> TxReceipt:
        """Record the sender's (an auditor's) review of override `seq` of `record_id`."""
        return sender.transact(self.access.functions.reviewOverride(record_id, seq, accepted, reason))

    def override_state(self, record_id: bytes, seq: int) -> OverrideState:
        """Return the review state of access `seq` of `record_id` (status NONE: not an override)."""
        requester, recorded_at, review_due, status = self._read(
            self.access.functions.overrideState(record_id, seq).call
        )
        return OverrideState(Address(requester), int(recorded_at), int(review_due), ReviewStatus(status))

    def _recorded(self, receipt: TxReceipt) -> AccessEntry:
        (event,) = self.access.events.AccessRecorded().process_receipt(receipt, errors=DISCARD)
        return entry_from_event(event)

    def request_access_batch(
        self, sender: TransactionSender, items: Sequence[AccessRequest], *, gas: int | None = None,
        sources: Sequence[int] | None = None,
    ) -> list[AccessEntry | AccessRefusal]:
        """Record many accesses by the sender in one transaction; return each item's entry or refusal, in order.

        A refused item (a rule fired) is an AccessRefusal (`.error()` is what `request_access` would
        raise); a malformed batch (empty, over MAX_BATCH) raises ContractRevertError. `gas` defaults
        to `batch_gas_limit` of the items, with `sources` (each item's number of sources, 0 for a
        plain record) read from the chain when not given: callers with cached record metadata pass it.
        """
        if gas is None:
            if sources is None:
                known = {record: self._source_count(record) for record in {bytes(i.record) for i in items}}
                sources = [known[bytes(i.record)] for i in items]
            gas = batch_gas_limit([len(i.consents) for i in items], sources)
        receipt = sender.transact(batch_call(self, items), gas=gas)
        return batch_outcomes(self, receipt, len(items))

    def _source_count(self, record_id: bytes) -> int:
        try:
            return len(self.record(record_id).derived_from)
        except ContractRevertError:  # unknown record: refused before any source is read
            return 0


def entry_from_event(event: Any) -> AccessEntry:
    """Return the AccessEntry carried by a decoded AccessRecorded event."""
    args = event["args"]
    return AccessEntry(
        record=RecordId(bytes(args["record"])),
        seq=int(args["seq"]),
        requester=Address(args["requester"]),
        purpose=int(args["purpose"]),
        consent=bytes(args["consent"]),
        head=bytes(args["head"]),
        timestamp=int(args["timestamp"]),
        block_number=int(event["blockNumber"]),
        tx_hash=bytes(event["transactionHash"]),
        identified=bool(args["identified"]),
        actor=ActorId(bytes(args["actor"])),
        basis=LegalBasis(int(args["basis"])),
    )
