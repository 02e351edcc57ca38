"""Many accesses in one transaction: `requestAccessBatch`'s requests, its per-item outcomes, its gas bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from consentledger.chain.access_logs import (
    ACCESS_RECORDED_TOPIC,
    ACCESS_REFUSED_TOPIC,
    as_bytes,
    entry_from_log,
    refused_fields,
)
from consentledger.consent import Consent
from consentledger.errors import TransactionFailedError
from consentledger.types import NO_ACTOR, AccessEntry, AccessRefusal, ActorId, LegalBasis

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

MAX_BATCH = 256
"""Most requests one batch may hold (AccessLedger.MAX_BATCH)."""


@dataclass(frozen=True)
class AccessRequest:
    """One access asked for: what `Ledger.request_access` takes, or, with `mandate` or `justification`,
    `request_access_under_mandate` / `request_access_override` (those are sent alone, never in a batch)."""

    record: bytes
    purpose: int
    consents: tuple[Consent, ...] = ()
    actor: ActorId = NO_ACTOR
    mandate: int | None = None
    """The statutory mandate the access is asked under (no consents then)."""
    justification: bytes | None = None
    """An emergency override's justification hash, keccak256(salt ‖ text) (no consents then)."""

    def __post_init__(self) -> None:
        if (self.mandate is not None) + (self.justification is not None) + bool(self.consents) > 1:
            raise ValueError("an access is asked under consents, a mandate or an override: one of them")

    @property
    def basis(self) -> LegalBasis:
        """Return the legal basis the access is asked under."""
        if self.mandate is not None:
            return LegalBasis.MANDATE
        return LegalBasis.CONSENT if self.justification is None else LegalBasis.OVERRIDE

    def as_tuple(self) -> tuple[bytes, int, bytes, list[tuple[Any, ...]]]:
        """Return the request as the ABI tuple IAccessLedger.AccessRequest (record, purpose, actor, consents)."""
        if self.basis is not LegalBasis.CONSENT:
            raise ValueError("an access under a mandate or by override is not a batch item")
        return (self.record, self.purpose, self.actor, [c.as_tuple() for c in self.consents])


def batch_call(ledger: Ledger, items: Sequence[AccessRequest]) -> ContractFunction:
    """Return the `requestAccessBatch` call for `items`, ready to send."""
    return ledger.access.functions.requestAccessBatch([item.as_tuple() for item in items])


def access_call(ledger: Ledger, items: Sequence[AccessRequest]) -> ContractFunction:
    """Return the call recording `items`: the batch of consent accesses, or the one mandate or override access alone.

    Either emits exactly one AccessRecorded or AccessRefused per item (a refused mandate or override
    access reverts instead), so `batch_outcomes` reads both receipts alike.
    """
    if len(items) == 1 and items[0].basis is not LegalBasis.CONSENT:
        (item,) = items
        functions = ledger.access.functions
        if item.mandate is not None:
            return functions.requestAccessUnderMandate(item.record, item.purpose, item.actor, item.mandate)
        return functions.requestAccessOverride(item.record, item.purpose, item.actor, item.justification)
    return batch_call(ledger, items)


def batch_outcomes(ledger: Ledger, receipt: TxReceipt, count: int) -> list[AccessEntry | AccessRefusal]:
    """Return each item's outcome, in item order, from the receipt of a batch of `count` items.

    The ledger emits exactly one AccessRecorded or AccessRefused per item, in item order, so the
    n-th of those logs (of the ledger contract) answers the n-th item. A receipt holding another
    number of them is no receipt of that batch: TransactionFailedError.
    """
    address = ledger.access.address.lower()
    outcomes: list[AccessEntry | AccessRefusal] = []
    for log in sorted(receipt["logs"], key=lambda entry: entry["logIndex"]):
        if str(log["address"]).lower() != address or not log["topics"]:
            continue
        topic = as_bytes(log["topics"][0])
        if topic == ACCESS_RECORDED_TOPIC:
            outcomes.append(entry_from_log(log))
        elif topic == ACCESS_REFUSED_TOPIC:
            outcomes.append(refusal_from_log(ledger, log))
    if len(outcomes) != count:
        raise TransactionFailedError(
            f"transaction 0x{bytes(receipt['transactionHash']).hex()} holds {len(outcomes)} access outcomes "
            f"for a batch of {count}"
        )
    return outcomes


def refusal_from_log(ledger: Ledger, log: Any) -> AccessRefusal:
    """Return the AccessRefusal carried by an AccessRefused log (its reason decoded to the rule)."""
    record, requester, purpose, actor, reason = refused_fields(log)
    error = ledger.decoder.decode(reason)
    return AccessRefusal(
        record=record, requester=requester, purpose=purpose, actor=actor, rule=error.rule,
        rule_args=error.rule_args, block_number=int(log["blockNumber"]), tx_hash=as_bytes(log["transactionHash"]),
        rule_arg_names=error.arg_names,
    )


# Per-item gas measured on ganache (shanghai) by scripts/gas_report.py, rounded up; see batch_gas_limit.
_TX_BASE = 21_000 + 14_000
"""The transaction, the batch's own words and checks, and the first Consortium call's cold account and slots."""
_ITEM = 36_000
"""A repeat access with one consent: ~30,000-32,000 measured, plus calldata priced as if every byte were
non-zero (16 gas, ~3,900 more than a real item) and a refused item's second cold Consortium read (a reverted
call forgets which slots it warmed)."""
_FIRST_ACCESS = 18_000
"""A record's first access writes its head from zero (22,100 instead of 5,000): ~17,100 measured."""
_CONSENT = 15_000
"""Each consent beyond the first: 9 calldata words (4,608 at most), its EIP-712 id, its cold state slot
read and written, the subject checks; a grantee that rotated its key adds a Consortium call."""
_SOURCE = 6_000
"""Each source of a derived record or aggregate: its cold entry in the sources list and its cold record slot."""
_MARGIN_NUM, _MARGIN_DEN = 5, 4
"""25 % over the sum: memory growth of large batches, the 1/64 of gas every call keeps back (EIP-150),
and the refusal event (~3,800) a refused item emits instead of AccessRecorded (~3,400)."""


def batch_gas_limit(consent_counts: Sequence[int], source_counts: Sequence[int]) -> int:
    """Return a gas limit that covers a batch whose items present `consent_counts[i]` consents and
    read `source_counts[i]` sources (0 for a plain record), whatever each item's outcome.

    Every item is counted as a first access with worst-case calldata, so the bound holds without
    knowing which records were accessed before or which items will be refused. Lets the gateway send
    without eth_estimateGas. A bound over the block gas limit (MAX_BATCH items of 32-source derived
    records) means the batch does not fit one block: split it.
    """
    if len(consent_counts) != len(source_counts):
        raise ValueError("one consent count and one source count per item")
    total = _TX_BASE
    for consents, sources in zip(consent_counts, source_counts, strict=True):
        total += _ITEM + _FIRST_ACCESS + _CONSENT * max(consents - 1, 0) + _SOURCE * sources
    return total * _MARGIN_NUM // _MARGIN_DEN

