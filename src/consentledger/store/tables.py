"""The gateway's tables: stored records, seen request nonces, signer nonces, the chain-write outbox, the release
log, audit-page sessions, the agency's clients and the consent requests it filed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC; SQLite (which drops the zone) reads back aware too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one (e.g. datetime.now(UTC))")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Json = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("record_id", String(66), primary_key=True, comment="0x-prefixed 32-byte id"),
    Column("custodian", String(42), nullable=False),
    Column("subject", String(42), nullable=False),
    Column("category", Integer, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=False),
    Column("kek_id", String(200), nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("commitment", LargeBinary, nullable=False),
    Column("derived_from", _Json, nullable=False, comment="list of 0x source record ids"),
    Column("state", String(16), nullable=False, comment="pending -> registered -> shredded"),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("custodian", "idempotency_key", name="uq_records_custodian_idempotency_key"),
)
Index("ix_records_subject", records.c.subject)

seen_nonces = Table(
    "seen_nonces",
    metadata,
    Column("signer", String(42), primary_key=True),
    Column("nonce", String(66), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
)
Index("ix_seen_nonces_expires_at", seen_nonces.c.expires_at)

signer_nonces = Table(
    "signer_nonces",
    metadata,
    Column("signer", String(42), primary_key=True),
    Column("next_nonce", BigInteger, nullable=True, comment="NULL: ask the chain (its pending count) next time"),
    Column("updated_at", UtcDateTime, nullable=False),
    comment="The next nonce of each signer, shared by the replicas of a gateway (PostgreSQL)",
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("record_id", String(66), nullable=True),
    Column("payload", _Json, nullable=False),
    Column("signer", String(42), nullable=False),
    Column("status", String(16), nullable=False, comment="pending | sent | done | failed"),
    Column("tx_nonce", BigInteger, nullable=True),
    Column("raw_tx", LargeBinary, nullable=True),
    Column("tx_hash", String(66), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_outbox_status", outbox.c.status)

page_sessions = Table(
    "page_sessions",
    metadata,
    Column("link_hash", String(64), primary_key=True, comment="SHA-256 of the one-time link token"),
    Column("cookie_hash", String(64), nullable=True, unique=True, comment="SHA-256 of the browser session token"),
    Column("viewer", String(42), nullable=False, comment="who signed the request for the page"),
    Column("view", String(16), nullable=False, comment="audit (an auditor's) | subject (one's own records)"),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_page_sessions_expires_at", page_sessions.c.expires_at)

clients = Table(
    "clients",
    metadata,
    Column("address", String(42), primary_key=True, comment="the client's own key (checksummed)"),
    Column("name", String(200), nullable=False, comment="the person or application, as the agency names it"),
    Column("role", String(16), nullable=False, comment="collect | request | audit-liaison"),
    Column("salt", LargeBinary, nullable=False, comment="32 random bytes: actor = keccak256(address word, salt)"),
    Column("actor", String(66), nullable=False, unique=True, comment="the pseudonym access entries carry on chain"),
    Column("added_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True, comment="set once: the key is refused from then on"),
)

client_roles = Table(
    "client_roles",
    metadata,
    Column("address", String(42), primary_key=True, comment="a client (clients.address)"),
    Column("role", String(16), primary_key=True, comment="a role beside its main one: emergency"),
    comment="Roles a client holds beside its main one (clients.role), granted when it was added",
)

override_justifications = Table(
    "override_justifications",
    metadata,
    Column("hash", String(66), primary_key=True, comment="0x keccak256(salt || text): the override's word on chain"),
    Column("salt", LargeBinary, nullable=False, comment="32 random bytes, so the hash reveals nothing by guessing"),
    Column("text", Text, nullable=False, comment="the justification as the client wrote it (UTF-8)"),
    Column("record", String(66), nullable=False, comment="the record the override was asked for"),
    Column("purpose", Integer, nullable=False),
    Column("actor", String(66), nullable=False, comment="the acting client's pseudonym (zero: the organisation)"),
    Column("created_at", UtcDateTime, nullable=False, comment="written before the override was sent to the chain"),
    comment="Justifications of this agency's emergency overrides; the chain holds only their salted hash",
)

releases = Table(
    "releases",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("record_id", String(66), nullable=False, comment="0x id of the record whose disclosure was released"),
    Column("seq", Integer, nullable=False, comment="the access's seq in the record's hash chain"),
    Column("ordinal", Integer, nullable=False, comment="1 for the access's first release, 2 for its second, ..."),
    Column("requester", String(42), nullable=False, comment="the organisation the disclosure was sealed for"),
    Column("access_block", BigInteger, nullable=False),
    Column("access_tx", String(66), nullable=False),
    Column("access_time", BigInteger, nullable=False, comment="the access's block timestamp (unix seconds)"),
    Column("consents", _Json, nullable=False, comment="0x ids of the consents checked still valid at release"),
    Column("withheld", _Json, nullable=False, comment="identifying field names not disclosed as values"),
    Column("withholding", String(16), nullable=False, comment="remove | pseudonymise | none (nothing withheld)"),
    Column("use", String(16), nullable=False, comment="immediate (PROTECTED) | standard"),
    Column("released_at", UtcDateTime, nullable=False),
    # The count of releases per access is race-free because two releases cannot take the same ordinal.
    UniqueConstraint("record_id", "seq", "ordinal", name="uq_releases_access_ordinal"),
)
Index("ix_releases_released_at", releases.c.released_at)

access_txs = Table(
    "access_txs",
    metadata,
    Column("tx_hash", String(66), primary_key=True, comment="a signed batch of accesses, saved before broadcast"),
    Column("signer", String(42), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("size", Integer, nullable=False, comment="how many accesses the batch holds"),
    Column("raw_tx", LargeBinary, nullable=False, comment="the signed transaction, to broadcast again on a retry"),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_access_txs_created_at", access_txs.c.created_at)

access_keys = Table(
    "access_keys",
    metadata,
    Column("caller", String(42), primary_key=True, comment="the client (or member) that sent the Idempotency-Key"),
    Column("key", String(210), primary_key=True, comment="its Idempotency-Key (#n for the n-th item of a batch call)"),
    Column("request_hash", String(64), nullable=False, comment="SHA-256 of the request the key first came with"),
    Column("tx_hash", String(66), nullable=False, comment="the batch transaction recording this access"),
    Column("item_index", Integer, nullable=False, comment="the access's position in that batch"),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_access_keys_created_at", access_keys.c.created_at)

consent_requests = Table(
    "consent_requests",
    metadata,
    Column("id", String(34), primary_key=True, comment="0x + 32 hex: random, unguessable"),
    Column("requester", String(42), nullable=False, comment="this agency's organisation: the consent's grantee"),
    Column("client", String(42), nullable=True, comment="the client key that filed it (None: the org key)"),
    Column("subject", String(42), nullable=False, comment="the data subject asked (checksummed)"),
    Column("category", Integer, nullable=False),
    Column("purpose", Integer, nullable=False),
    Column("record", String(66), nullable=True, comment="one record only, or NULL for the whole category"),
    Column("valid_until", BigInteger, nullable=False, comment="the longest validity asked (unix seconds)"),
    Column("max_uses", BigInteger, nullable=False, comment="the most uses asked"),
    Column("identified", Integer, nullable=False, comment="1: identifying fields asked for"),
    Column("reason", Text, nullable=False, comment="the human-readable reason shown to the subject"),
    Column("callback_url", Text, nullable=True, comment="POSTed the request once it is answered (optional)"),
    Column("state", String(16), nullable=False, comment="requested -> granted | denied (expired/revoked are read)"),
    Column("consent", _Json, nullable=True, comment="the granted consent's terms (Consent.to_json, nonce a string)"),
    Column("consent_id", String(66), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, comment="an unanswered request lapses then"),
    Column("answered_at", UtcDateTime, nullable=True),
)
Index("ix_consent_requests_subject", consent_requests.c.subject)

portal_challenges = Table(
    "portal_challenges",
    metadata,
    Column("challenge_hash", String(64), primary_key=True, comment="SHA-256 of the 32-byte sign-in challenge"),
    Column("subject", String(42), nullable=False, comment="the data subject asked to sign (checksummed)"),
    Column("sign_in", _Json, nullable=False, comment="the PortalSignIn message to sign (wallet JSON form)"),
    Column("expires_at", UtcDateTime, nullable=False, comment="the challenge is refused from then on (5 minutes)"),
    Column("created_at", UtcDateTime, nullable=False),
    comment="Subject portal sign-in challenges: each answered at most once, then deleted",
)
Index("ix_portal_challenges_expires_at", portal_challenges.c.expires_at)

portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True, comment="SHA-256 of the session cookie's token"),
    Column("subject", String(42), nullable=False, comment="the signed-in data subject (checksummed)"),
    Column("sign_in", _Json, nullable=False, comment="the PortalSignIn message the subject signed"),
    Column("signature", String(132), nullable=False, comment="their signature: the proof forwarded to peers"),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    comment="Subject portal sessions, opened by a signed sign-in challenge",
)
Index("ix_portal_sessions_expires_at", portal_sessions.c.expires_at)

request_callbacks = Table(
    "request_callbacks",
    metadata,
    Column("request_id", String(34), primary_key=True, comment="the consent request it tells of"),
    Column("state", String(16), primary_key=True, comment="granted | denied | expired: one callback each, at most"),
    Column("url", Text, nullable=False, comment="the request's callback_url when the row was written"),
    Column("attempts", Integer, nullable=False, comment="deliveries tried so far"),
    Column("next_at", UtcDateTime, nullable=True, comment="when it is next due (NULL: delivered, or given up)"),
    Column("last_error", Text, nullable=True, comment="why the latest attempt failed (NULL after a success)"),
    Column("delivered_at", UtcDateTime, nullable=True, comment="set once, by the one successful delivery"),
    Column("created_at", UtcDateTime, nullable=False, comment="written in the transaction of the state change"),
)
Index("ix_request_callbacks_next_at", request_callbacks.c.next_at)
