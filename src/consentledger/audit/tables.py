"""The audit index's tables: chain events of one deployment, shaped for trace and verify queries.

Ids and hashes are 0x-prefixed lower-case hex, addresses checksummed, times unix seconds. Every
row carries the block it came from, so a chain reorganisation is undone by deleting (or clearing)
what was indexed from the first changed block on.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from consentledger.store.db import create_tables

metadata = MetaData()

_Hash = String(66)
_Address = String(42)

cursor = Table(
    "idx_cursor",
    metadata,
    Column("id", Integer, primary_key=True, comment="always 1: one deployment per index"),
    Column("chain_id", BigInteger, nullable=False),
    Column("consortium", _Address, nullable=False),
    Column("access_ledger", _Address, nullable=False),
    Column("deploy_block", BigInteger, nullable=False),
    Column("block_number", BigInteger, comment="last block indexed; NULL before the first range"),
    Column("block_hash", _Hash),
    Column("block_timestamp", BigInteger),
)

blocks = Table(
    "idx_blocks",
    metadata,
    Column("number", BigInteger, primary_key=True),
    Column("hash", _Hash, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("has_events", Boolean, nullable=False, comment="kept for good; others only near the cursor"),
)

events = Table(
    "idx_events",
    metadata,
    Column("block", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("tx_hash", _Hash, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("contract", _Address, nullable=False),
    Column("name", String(64), nullable=False),
    Column("args", JSON, nullable=False),
    comment="every decoded event except AccessRecorded (idx_accesses) and AccessRefused (idx_refusals)",
)

members = Table(
    "idx_members",
    metadata,
    Column("address", _Address, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("roles", Integer, nullable=False),
    Column("status", Integer, nullable=False),
    Column("x25519", _Hash, nullable=False),
    Column("gateway", String(500), nullable=False),
    Column("admitted_block", BigInteger, nullable=False),
    Column("updated_block", BigInteger, nullable=False),
)

membership_changes = Table(
    "idx_membership_changes",
    metadata,
    Column("block", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("account", _Address, nullable=False),
    Column("status", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("tx_hash", _Hash, nullable=False),
    Index("ix_idx_membership_changes_account", "account", "block", "log_index"),
)

categories = Table(
    "idx_categories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("sensitivity", Integer, nullable=False),
    Column("retention", BigInteger, nullable=False),
    Column("min_aggregate_subjects", Integer, nullable=False),
    Column("allowed_purposes", JSON, nullable=False, comment="purpose ids"),
    Column("fields", JSON, nullable=False),
    Column("identifying_fields", JSON, nullable=False),
    Column("added_block", BigInteger, nullable=False),
    Column("updated_block", BigInteger, nullable=False),
)

purposes = Table(
    "idx_purposes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("sunset", BigInteger, nullable=False, comment="0: none"),
    Column("added_block", BigInteger, nullable=False),
    Column("updated_block", BigInteger, nullable=False),
)

records = Table(
    "idx_records",
    metadata,
    Column("id", _Hash, primary_key=True),
    Column("custodian", _Address, nullable=False),
    Column("subject", _Address, nullable=False),
    Column("category", Integer, nullable=False),
    Column("commitment", _Hash, nullable=False),
    Column("retain_until", BigInteger, nullable=False),
    Column("derived_from", JSON, nullable=False, comment="record ids as registered (not expanded)"),
    Column("kind", Integer, nullable=False, default=0, comment="RecordKind: 0 plain, 1 derived, 2 aggregate"),
    Column("registered_block", BigInteger, nullable=False),
    Column("registered_tx", _Hash, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    Column("tombstone", Integer, comment="TombstoneReason; NULL while live"),
    Column("tombstoned_at", BigInteger),
    Column("tombstoned_block", BigInteger),
    Column("tombstoned_log_index", Integer),
    Column("tombstoned_tx", _Hash),
    Column("attested_block", BigInteger, comment="RecordAttested: the subject confirmed it; NULL while not"),
    Column("attested_log_index", Integer),
    Column("attested_tx", _Hash),
    Index("ix_idx_records_subject", "subject"),
    Index("ix_idx_records_custodian", "custodian"),
    Index("ix_idx_records_registered_block", "registered_block"),
)

record_sources = Table(
    "idx_record_sources",
    metadata,
    Column("record", _Hash, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("source", _Hash, nullable=False, comment="an original (non-derived) source, as the contract keeps it"),
    Column("block", BigInteger, nullable=False),
    Index("ix_idx_record_sources_source", "source"),
)

consents = Table(
    "idx_consents",
    metadata,
    Column("id", _Hash, primary_key=True),
    Column("subject", _Address, nullable=False),
    Column("grantee", _Address, comment="NULL: revoked before it was ever granted"),
    Column("category", Integer),
    Column("record", _Hash, comment="0x00…00: every record of the category"),
    Column("purpose", Integer),
    Column("valid_until", BigInteger),
    Column("max_uses", BigInteger),
    Column("identified", Boolean),
    Column("nonce", String(20), comment="uint64 in decimal"),
    Column("granted_block", BigInteger),
    Column("granted_log_index", Integer),
    Column("granted_tx", _Hash),
    Column("granted_at", BigInteger),
    Column("revoked_block", BigInteger),
    Column("revoked_log_index", Integer),
    Column("revoked_tx", _Hash),
    Column("revoked_at", BigInteger),
    Index("ix_idx_consents_subject", "subject"),
    Index("ix_idx_consents_grantee", "grantee"),
)

accesses = Table(
    "idx_accesses",
    metadata,
    Column("record", _Hash, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("requester", _Address, nullable=False),
    Column("actor", _Hash, nullable=False, comment="the acting client (pseudonym); 0x00…00: the org"),
    Column("purpose", Integer, nullable=False),
    Column("basis", Integer, nullable=False,
           comment="legal basis: 0 consent, 1 statutory mandate, 2 emergency override"),
    Column("consent", _Hash, nullable=False,
           comment="under consent the consent id (0x00…00: OPEN category without consent); the mandate id under "
                   "a mandate; the justification hash under an override"),
    Column("identified", Boolean, nullable=False, comment="identifying fields released (every consent allowed it)"),
    Column("head", _Hash, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("block", BigInteger, nullable=False),
    Column("tx_hash", _Hash, nullable=False),
    Column("log_index", Integer, nullable=False),
    Index("ix_idx_accesses_block", "block", "log_index"),
    Index("ix_idx_accesses_requester", "requester", "timestamp"),
    Index("ix_idx_accesses_purpose", "purpose", "timestamp"),
    Index("ix_idx_accesses_timestamp", "timestamp"),
    Index("ix_idx_accesses_consent", "consent"),
)

refusals = Table(
    "idx_refusals",
    metadata,
    Column("block", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("record", _Hash, nullable=False, comment="as asked for: it may name no registered record"),
    Column("requester", _Address, nullable=False),
    Column("actor", _Hash, nullable=False, comment="the acting client (pseudonym); 0x00…00: the org"),
    Column("purpose", Integer, nullable=False),
    Column("rule", String(64), nullable=False, comment="the custom error's name; its selector in hex if unknown"),
    Column("rule_args", JSON, nullable=False, comment="the error's arguments by name"),
    Column("reason", Text, nullable=False, comment="the full error data (selector + ABI-encoded arguments), hex"),
    Column("timestamp", BigInteger, nullable=False, comment="the block's time"),
    Column("tx_hash", _Hash, nullable=False),
    Index("ix_idx_refusals_record", "record"),
    Index("ix_idx_refusals_requester", "requester", "timestamp"),
    Index("ix_idx_refusals_timestamp", "timestamp"),
    comment="AccessRefused: accesses asked for in a batch that broke a rule (on no hash chain)",
)

mandates = Table(
    "idx_mandates",
    metadata,
    Column("id", Integer, primary_key=True, comment="1-based, as the Consortium numbers them"),
    Column("ref", _Hash, nullable=False, unique=True,
           comment="the id as the 32-byte word an access under it carries in idx_accesses.consent"),
    Column("institution", _Address, nullable=False),
    Column("purpose", Integer, nullable=False),
    Column("categories", JSON, nullable=False, comment="category ids"),
    Column("valid_until", BigInteger, nullable=False),
    Column("identified", Boolean, nullable=False),
    Column("legal_text_hash", _Hash, nullable=False),
    Column("legal_text_uri", Text, nullable=False),
    Column("granted_block", BigInteger, nullable=False),
    Column("granted_log_index", Integer, nullable=False),
    Column("granted_tx", _Hash, nullable=False),
    Column("granted_at", BigInteger, nullable=False),
    Column("revoked_block", BigInteger, comment="NULL while not revoked"),
    Column("revoked_log_index", Integer),
    Column("revoked_tx", _Hash),
    Column("revoked_at", BigInteger),
    comment="MandateGranted / MandateRevoked: statutory mandates (rebuilt from idx_events after a reorg)",
)

override_policies = Table(
    "idx_override_policies",
    metadata,
    Column("block", BigInteger, primary_key=True),
    Column("log_index", Integer, primary_key=True),
    Column("purposes", JSON, nullable=False, comment="purpose ids an override may name"),
    Column("review_period", BigInteger, nullable=False),
    Column("max_overrides", Integer, nullable=False, comment="0: no limit"),
    Column("rate_window", BigInteger, nullable=False),
    Column("tx_hash", _Hash, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    comment="OverridePolicyChanged, every one: the policy in force at a block is the last one before it",
)

overrides = Table(
    "idx_overrides",
    metadata,
    Column("record", _Hash, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("requester", _Address, nullable=False),
    Column("justification", _Hash, nullable=False, comment="keccak256 of the text the requester's agency keeps"),
    Column("review_due", BigInteger, nullable=False),
    Column("recorded_block", BigInteger, nullable=False),
    Column("recorded_log_index", Integer, nullable=False),
    Column("recorded_tx", _Hash, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("reviewed_by", _Address, comment="the auditor; NULL while pending"),
    Column("accepted", Boolean),
    Column("reason", Text),
    Column("reviewed_at", BigInteger),
    Column("reviewed_block", BigInteger),
    Column("reviewed_log_index", Integer),
    Column("reviewed_tx", _Hash),
    Index("ix_idx_overrides_requester", "requester", "recorded_at"),
    comment="OverrideRecorded / OverrideReviewed: emergency overrides and their auditors' reviews",
)

BLOCK_COLUMNS = {
    events: "block",
    membership_changes: "block",
    record_sources: "block",
    accesses: "block",
    refusals: "block",
    blocks: "number",
}
"""Tables whose rows are simply deleted when a reorg removes their block."""


def create_index_schema(engine: Engine) -> None:
    """Create every index table that does not exist yet (safe to call on every run, by replicas at once)."""
    create_tables(engine, metadata)
