"""Models of the gateway's JSON answers, so the served OpenAPI document describes each 200.

Each model matches its route's answer field for field, in order (`additionalProperties: false` in
the schema, none left out). Most routes declare theirs as documentation only (`responses={200:
...}`, `openapi.response_schema`), so the bytes answered never pass through a model; the served
answers are checked against these schemas by tests/gateway/test_openapi.py and the signed fuzz.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogCategoryOut(_Answer):
    """A category of the positive list: what may be collected, how it is protected and kept, what it may serve."""

    id: int
    name: str
    sensitivity: Literal["open", "one-time", "protected"]
    retention: int = Field(description="Seconds a record of it is kept")
    min_aggregate_subjects: int = Field(description="K: distinct subjects an anonymous aggregate needs (0: none)")
    fields: list[str] = Field(description="Fields a record may hold")
    identifying_fields: list[str] = Field(description="Fields withheld unless a consent allows identification")
    allowed_purposes: list[int] = Field(description="Ids of the purposes it may be used for")


class CatalogPurposeOut(_Answer):
    """A purpose of use, its sunset and whether it is still in use at the catalog's block."""

    id: int
    name: str
    sunset: int | None = Field(description="When it ends (unix seconds); None: no sunset")
    sunset_at: str | None = Field(description="The sunset as ISO-8601 UTC; None: no sunset")
    active: bool = Field(description="Not past its sunset at `block_time`: consents for it can still be used")


class CatalogOut(_Answer):
    """GET /v1/catalog: the positive list as of a block, judged by that block's time (the contracts' clock)."""

    block: int
    block_time: int = Field(description="The block's timestamp (unix seconds)")
    categories: list[CatalogCategoryOut]
    purposes: list[CatalogPurposeOut]


class FundingOut(_Answer):
    """The gateway signer's balance against what one chain write costs (wei as decimal strings)."""

    address: str
    funded: bool = Field(description="Whether the balance pays for a write")
    balance: str
    needed: str = Field(description="What one write costs at most: its gas at the gas price")
    gas_price: str
    gas: int


class HealthOut(_Answer):
    """GET /v1/health: alive, whose gateway, on which chain, at which block, and whether its signer can pay."""

    status: Literal["ok"]
    org: str = Field(description="The organisation's signer address (the audience of signed requests)")
    name: str
    chain_id: int
    block: int
    funding: FundingOut


class ReadyOut(_Answer):
    """GET /v1/ready: the gateway can take chain writes now."""

    status: Literal["ready"]
    org: str
    funding: FundingOut


class OverrideOut(_Answer):
    """An emergency override's mark on chain: its justification's salted hash and when its review is due."""

    justification_hash: str = Field(description="keccak256(salt || text): the requester's gateway keeps both")
    review_due: int = Field(description="When an auditor must have reviewed it (unix seconds)")


class ReceiptEntryOut(_Answer):
    """One access entry's fields as hashed into the record's chain."""

    seq: int
    requester: str
    actor: str
    purpose: int
    basis: Literal["consent", "mandate", "override"]
    consent: str
    identified: bool
    timestamp: int


class ReceiptOut(_Answer):
    """GET /v1/receipts/{record}/{seq}: an offline receipt (format consentledger-receipt/2, see README "Receipts")."""

    format: str
    chain_id: int
    ledger: str
    record: str
    seq: int
    previous: str = Field(description="The record's head before this access")
    entries: list[ReceiptEntryOut] = Field(description="This access and every later one to the record in its block")
    head: str = Field(description="The record's head after the block, proved in the ledger's storage")
    block_number: int
    block_hash: str
    header: str = Field(description="The block header's RLP (hashes to block_hash)")
    storage_slot: str
    account_proof: list[str]
    storage_proof: list[str]
    sealed_header: str | None = Field(default=None, description="QBFT: the header with its commit seals")


class AccessOut(_Answer):
    """POST /v1/access: the record released for this access, its entry on chain, its legal basis, and how it may
    be used."""

    record: str
    seq: int = Field(description="The access's place in the record's hash chain")
    tx: str
    block: int
    category: int
    custodian: str
    identified: bool = Field(description="Whether identifying fields were released")
    actor: str = Field(description="The acting client's pseudonym (zero: the organisation itself)")
    use: Literal["immediate", "standard"] = Field(description="immediate (PROTECTED): use now, do not keep")
    basis: Literal["consent", "mandate", "override"] = Field(description="The legal basis the chain recorded")
    mandate: int | None = Field(None, description="Under a statutory mandate: its id (absent otherwise)")
    override: OverrideOut | None = Field(None, description="By emergency override: its review (absent otherwise)")
    payload: dict[str, Any] = Field(description="The record's fields; identifying ones removed or pseudonymised "
                                                "unless identified")
    receipt: ReceiptOut | None = Field(None, description="The access's offline receipt (POST /v1/access and "
                                                         "/v1/access/resume; null if the node gave no proof: "
                                                         "GET /v1/receipts/{record}/{seq} later)")


class JustificationOut(_Answer):
    """GET /v1/audit/overrides/{record}/{seq}: an override's justification as its requester keeps it; keccak256(salt
    || justification as UTF-8) is `hash`, the entry's word on chain and OverrideRecorded's `justification`."""

    record: str
    seq: int
    justification: str
    salt: str = Field(description="0x-prefixed 32 random bytes")
    hash: str = Field(description="0x keccak256(salt || justification)")
    actor: str = Field(description="The acting client's pseudonym (zero: the organisation itself)")
    recorded_at: int = Field(description="The access's block time (unix seconds)")
    tx: str
    block: int


class AccessItemOut(AccessOut):
    """One released item of POST /v1/access/batch: the single call's answer with its status."""

    status: Literal[200]


class AccessRefusedItemOut(BaseModel):
    """One refused item of POST /v1/access/batch: the single call's refusal body with its HTTP status."""

    model_config = ConfigDict(extra="allow")  # each refusal adds its own fields (rule, tombstone, ...)

    record: str | None
    error: str
    detail: str
    status: int
    rule: str | None = Field(None, description="The contract rule, for a `rule_violated` refusal")


class AccessBatchOut(_Answer):
    """POST /v1/access/batch: one answer per item asked, in order."""

    items: list[AccessItemOut | AccessRefusedItemOut]


class ReleaseOut(_Answer):
    """A disclosure this gateway released (as custodian) for an access."""

    ordinal: int
    released_at: str | None
    requester: str
    consents: list[str]
    withheld: list[str] = Field(description="Identifying fields the requester was not shown")
    withholding: str
    use: str


class TraceLineOut(_Answer):
    """An access recorded on chain, with the names the catalog and the members give its ids."""

    seq: int
    time: str = Field(description="The block's time, ISO-8601 UTC")
    timestamp: int
    record: str
    subject: str | None
    category: int | None
    category_name: str | None
    custodian: str | None
    custodian_name: str | None
    requester: str
    requester_name: str | None
    actor: str | None = Field(description="The requester's acting client as a pseudonym; None: the org itself")
    purpose: int
    purpose_name: str | None
    basis: Literal["consent", "mandate", "override"] = Field(
        description="The legal basis: the subject's consent, a statutory mandate, or an emergency override")
    consent: str | None = Field(description="Under consent the consent id (None: OPEN, no consent); under a mandate "
                                            "the mandate id as a word; under an override the justification hash")
    mandate: int | None = Field(description="The statutory mandate's id, for an access under a mandate")
    mandate_uri: str | None = Field(description="Under a mandate: where its legal text is published")
    review: str | None = Field(description="Under an override: its review, pending, accepted or rejected")
    basis_words: str = Field(description="The basis as a sentence for the data subject")
    identified: bool
    tx_hash: str
    block: int
    log_index: int


class HistoryLineOut(TraceLineOut):
    """An access to one of the subject's records, with where to fetch its offline receipt."""

    receipt: str = Field(description="GET this path (signed) for the access's offline receipt: "
                                     "`consentledger receipt verify` checks it with no node")


class AuditedAccessOut(TraceLineOut):
    """An access in the auditors' listing, with the releases this gateway made for it."""

    releases: list[ReleaseOut]


class RefusalLineOut(_Answer):
    """An attempt the ledger refused (AccessRefused), the rule it broke and why in plain words."""

    time: str
    timestamp: int
    record: str
    subject: str | None
    category: int | None
    category_name: str | None
    custodian: str | None
    custodian_name: str | None
    requester: str
    requester_name: str | None
    actor: str | None
    purpose: int
    purpose_name: str | None
    rule: str
    rule_args: dict[str, Any]
    why: str
    tx_hash: str
    block: int
    log_index: int


class AccessPageOut(_Answer):
    """GET /v1/audit/accesses: one page of accesses, oldest first, as of the index's block."""

    items: list[AuditedAccessOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="The next page's offset; None: this is the last")
    block: int | None = Field(description="The block the index has reached (None: nothing indexed yet)")


class RefusalPageOut(_Answer):
    """GET /v1/audit/refusals: one page of refused attempts, oldest first, as of the index's block."""

    items: list[RefusalLineOut]
    limit: int
    offset: int
    next_offset: int | None
    block: int | None


class RecordHeadOut(_Answer):
    """One of the subject's records: its hash-chain head on chain and how many accesses it has."""

    record: str
    head: str
    accesses: int


class TombstoneOut(_Answer):
    """A record's tombstone on chain: why it was destroyed, and where."""

    record: str
    subject: str
    custodian: str
    reason: str
    tx_hash: str
    block: int
    timestamp: int
    time: str


class HistoryOut(_Answer):
    """GET /v1/subjects/me/history: every access to the signer's records, their heads, tombstones and refusals."""

    subject: str
    block: int | None
    items: list[HistoryLineOut]
    records: list[RecordHeadOut]
    tombstones: list[TombstoneOut]
    refusals: list[RefusalLineOut]

