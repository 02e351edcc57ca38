"""Gas used per ledger operation, measured on a real chain, with the targets we hold them to."""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3
from web3.types import TxReceipt

from consentledger import governance
from consentledger.attestation import RecordAttestation, sign_attestation
from consentledger.chain.batch import AccessRequest
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.sender import TransactionSender
from consentledger.consent import Consent, sign_consent
from consentledger.types import ActorId, Role, Sensitivity, TombstoneReason

TARGETS: dict[str, int] = {
    "requestAccess (first access to a record)": 80_000,
    "requestAccess (repeat access)": 60_000,
    "grantConsent (relayed)": 78_000,
    # 31,000 since the legal basis joined each entry (one more event word and hashed word): 30,733 measured.
    "requestAccessBatch of 50, per item: repeat access, distinct records": 31_000,
}
BATCH = 50
"""Items per measured batch."""


@dataclass(frozen=True)
class GasFigure:
    """Gas used by one operation, and its target if it has one."""

    operation: str
    gas: int
    target: int | None = None

    @property
    def meets_target(self) -> bool:
        """Return whether the figure is within its target (True when there is none)."""
        return self.target is None or self.gas <= self.target


class _Recorder:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.figures: list[GasFigure] = []

    def note(self, operation: str, receipt: TxReceipt, *, items: int = 1) -> None:
        """Note the receipt's gas, divided by `items` for a figure per batch item."""
        self.figures.append(GasFigure(operation, int(receipt["gasUsed"]) // items, TARGETS.get(operation)))

    def last_receipt(self, sender: TransactionSender) -> TxReceipt:
        block = self.ledger.w3.eth.get_block("latest", full_transactions=True)
        for tx in reversed(block["transactions"]):
            if tx["from"] == sender.address:  # type: ignore[index]
                return self.ledger.w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
        raise LookupError("no transaction from the sender in the latest block")


def measure_gas(w3: Web3, accounts: list[LocalAccount]) -> list[GasFigure]:
    """Deploy a fresh consortium on `w3` and return the gas of every operation, one figure each.

    Needs six funded accounts: two admins, a custodian, a requester, a relayer and one that pays
    the data subject's gas for a direct revocation.
    """
    admin, admin2, custodian, requester, relayer, funder = accounts[:6]
    ledger = deploy(w3, admin, [admin.address, admin2.address], 1)
    rec = _Recorder(ledger)
    names = {c.address: name for name, c in ledger.deployment.contracts.items()}
    for number in range(ledger.deployment.deploy_block, w3.eth.block_number + 1):
        for tx_hash in w3.eth.get_block(number)["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            if receipt["contractAddress"] in names:
                rec.note(f"deploy {names[receipt['contractAddress']]}", receipt)
    a, c, r, relay = (ledger.sender(x) for x in (admin, custodian, requester, relayer))

    ledger.propose(a, governance.add_purpose(1, "epidemic-control"))
    rec.note("governance: add purpose (threshold 1)", rec.last_receipt(a))
    ledger.propose(a, governance.add_category(
        1, "contact-trace", Sensitivity.PROTECTED, 30 * 86400, ["name", "phone", "district"], ["name", "phone"], [1]
    ))
    rec.note("governance: add category (3 fields)", rec.last_receipt(a))
    ledger.propose(a, governance.add_category(
        2, "district-stats", Sensitivity.OPEN, 30 * 86400, ["district", "cases"], [], [1], min_aggregate_subjects=2
    ))
    ledger.propose(a, governance.admit_member(custodian.address, Role.CUSTODIAN, "health bureau", b"\x01" * 32, "http://127.0.0.1:9001"))
    rec.note("register member (admit, threshold 1)", rec.last_receipt(a))
    ledger.propose(a, governance.admit_member(requester.address, Role.REQUESTER, "transport bureau", b"\x02" * 32, "http://127.0.0.1:9002"))
    ledger.propose(a, governance.set_threshold(2))
    proposal, _ = ledger.propose(a, governance.add_purpose(2, "research"))
    rec.note("governance: propose (threshold 2, not yet run)", rec.last_receipt(a))
    ledger.approve(ledger.sender(admin2), proposal)
    rec.note("governance: approve (runs add purpose)", rec.last_receipt(ledger.sender(admin2)))

    subject = Account.create()
    warmup, record, open_record = keccak(b"warm-up record"), keccak(b"record"), keccak(b"open record")
    commitment = keccak(b"salt" + b'{"name":"A"}')
    ledger.register_record(c, warmup, subject.address, 1, commitment)
    rec.note("registerRecord", ledger.register_record(c, record, subject.address, 1, commitment))
    ledger.register_record(c, open_record, subject.address, 2, commitment)

    valid_until = int(time.time()) + 86400
    domain = ledger.domain()

    def consent_for(record_id: bytes, max_uses: int) -> Consent:
        consent = Consent.new(subject=subject.address, grantee=requester.address, category=1, record=record_id,
                              purpose=1, valid_until=valid_until, max_uses=max_uses)
        ledger.grant_consent(relay, consent, sign_consent(consent, subject.key, domain))
        return consent

    clerk = ActorId(keccak(b"a clerk's actor pseudonym"))  # a client acts: a non-zero word costs more calldata
    warm_consent = consent_for(warmup, 1)
    ledger.request_access(r, warmup, 1, [warm_consent], actor=clerk)  # the ledger's first access ever, not a record's
    consent = consent_for(record, 5)
    rec.note("grantConsent (relayed)", rec.last_receipt(relay))
    ledger.request_access(r, record, 1, [consent], actor=clerk)
    rec.note("requestAccess (first access to a record)", rec.last_receipt(r))
    ledger.request_access(r, record, 1, [consent], actor=clerk)
    rec.note("requestAccess (repeat access)", rec.last_receipt(r))
    ledger.request_access(r, open_record, 1, [], actor=clerk)
    rec.note("requestAccess (OPEN category, no consent, first)", rec.last_receipt(r))
    ledger.request_access(r, open_record, 1, [], actor=clerk)
    rec.note("requestAccess (OPEN category, no consent, repeat)", rec.last_receipt(r))
    _measure_legal_bases(rec, a, ledger.sender(admin2), c, r, funder, subject.address, clerk)
    subject_sender = ledger.sender(subject)
    _fund(w3, funder, subject.address)
    rec.note("revokeConsent (by subject)", ledger.revoke_consent(subject_sender, consent))
    other = Account.create()
    other_record = keccak(b"other subject's record")
    ledger.register_record(c, other_record, other.address, 1, commitment)
    rec.note("attestRecord (relayed)", ledger.attest_record(relay, record, _attestation(ledger, record, subject)))
    ledger.attest_record(relay, other_record, _attestation(ledger, other_record, other))
    rec.note("registerAggregate (2 attested sources, K = 2)", ledger.register_aggregate(
        c, keccak(b"aggregate"), 2, commitment, [record, other_record]))
    rec.note("tombstone", ledger.tombstone(c, record, TombstoneReason.ERASURE))
    _measure_batches(rec, c, r, relay, subject, clerk, valid_until)
    return rec.figures


def _measure_legal_bases(
    rec: _Recorder, admin: TransactionSender, admin2: TransactionSender, custodian: TransactionSender,
    requester: TransactionSender, funder: LocalAccount, subject: str, actor: ActorId,
) -> None:
    """Note the gas of accesses under a statutory mandate and by emergency override, and of an override's review.

    Each reads a fresh record of the PROTECTED category (first access, then a repeat), as the
    consent figures do; the review is an auditor's of another organisation, with a one-line reason.
    """
    ledger = rec.ledger
    commitment = keccak(b"salt" + b'{"name":"C"}')
    under_mandate, overridden = keccak(b"record read under a mandate"), keccak(b"record read by override")
    for record_id in (under_mandate, overridden):
        ledger.register_record(custodian, record_id, subject, 1, commitment)
    auditor = Account.create()
    _fund(ledger.w3, funder, auditor.address)
    valid_until = int(ledger.w3.eth.get_block("latest")["timestamp"]) + 30 * 86400
    for action in (
        governance.grant_mandate(requester.address, 1, [1], valid_until, keccak(b"the act"), "https://laws.example/act"),
        governance.set_roles(requester.address, Role.REQUESTER | Role.EMERGENCY),
        governance.set_override_policy([1], 3 * 86400),
        governance.admit_member(auditor.address, Role.AUDITOR, "audit office", b"\x03" * 32, ""),
    ):
        proposal, _ = ledger.propose(admin, action)
        ledger.approve(admin2, proposal)
    for repeat in ("first access to a record", "repeat access"):
        ledger.request_access_under_mandate(requester, under_mandate, 1, 1, actor=actor)
        rec.note(f"requestAccessUnderMandate ({repeat})", rec.last_receipt(requester))
    justification = keccak(b"unconscious patient: reach their contacts tonight")
    for repeat in ("first access to a record", "repeat access"):
        ledger.request_access_override(requester, overridden, 1, justification, actor=actor)
        rec.note(f"requestAccessOverride ({repeat})", rec.last_receipt(requester))
    reason = "the call log confirms the emergency"
    rec.note(f"reviewOverride (accepted, {len(reason)}-byte reason)",
             ledger.review_override(ledger.sender(auditor), overridden, 1, True, reason))


def _measure_batches(
    rec: _Recorder, custodian: TransactionSender, requester: TransactionSender, relay: TransactionSender,
    subject: LocalAccount, actor: ActorId, valid_until: int,
) -> None:
    """Note the per-item gas of batches of BATCH: first accesses, repeats (distinct records, one record), refusals.

    Every record is of the PROTECTED category and every item presents its own record-scoped consent
    of two uses, so the distinct-records repeat batch is the realistic worst case of a burst.
    """
    ledger = rec.ledger
    commitment = keccak(b"salt" + b'{"name":"B"}')

    def consent_for(record_id: bytes, max_uses: int) -> Consent:
        consent = Consent.new(subject=subject.address, grantee=requester.address, category=1, record=record_id,
                              purpose=1, valid_until=valid_until, max_uses=max_uses)
        ledger.grant_consent(relay, consent, sign_consent(consent, subject.key, ledger.domain()))
        return consent

    records = [keccak(b"batch record %d" % n) for n in range(BATCH)]
    for record_id in records:
        ledger.register_record(custodian, record_id, subject.address, 1, commitment)
    items = [AccessRequest(record_id, 1, (consent_for(record_id, 2),), actor) for record_id in records]
    per_item = f"requestAccessBatch of {BATCH}, per item:"
    ledger.request_access_batch(requester, items)
    rec.note(f"{per_item} first access, distinct records", rec.last_receipt(requester), items=BATCH)
    ledger.request_access_batch(requester, items)
    rec.note(f"{per_item} repeat access, distinct records", rec.last_receipt(requester), items=BATCH)
    ledger.request_access_batch(requester, items)  # every consent's two uses are spent
    rec.note(f"{per_item} refused (consent exhausted)", rec.last_receipt(requester), items=BATCH)

    one = keccak(b"batch record, one for all")
    ledger.register_record(custodian, one, subject.address, 1, commitment)
    shared = consent_for(one, 2 * BATCH)
    ledger.request_access(requester, one, 1, [shared], actor=actor)
    repeats = [AccessRequest(one, 1, (shared,), actor)] * BATCH
    ledger.request_access_batch(requester, repeats)
    rec.note(f"{per_item} repeat access, one record and consent", rec.last_receipt(requester), items=BATCH)


def _attestation(ledger: Ledger, record_id: bytes, subject: LocalAccount) -> bytes:
    terms = RecordAttestation.of(ledger.record(record_id))
    return sign_attestation(terms, subject.key, ledger.domain())


def _fund(w3: Web3, payer: LocalAccount, to: str) -> None:
    tx = {
        "to": to, "value": 10**17, "gas": 21_000, "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(payer.address, "pending"), "chainId": w3.eth.chain_id,
    }
    signed = payer.sign_transaction(tx)  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
