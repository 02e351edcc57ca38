"""The gateway's database: records, seen request nonces and the chain-write outbox."""

from consentledger.store.db import create_schema, make_engine
from consentledger.store.repository import OutboxItem, OutboxStatus, QueuedWrite, RecordState, Store, StoredRecord

__all__ = [
    "OutboxItem", "OutboxStatus", "QueuedWrite", "RecordState", "Store", "StoredRecord", "create_schema",
    "make_engine",
]
