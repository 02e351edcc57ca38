"""The gateway's database: records, seen request nonces, the chain-write outbox and the release log."""

from consentledger.store.db import create_schema, make_engine
from consentledger.store.releases import Release, ReleaseLog
from consentledger.store.repository import OutboxItem, OutboxStatus, QueuedWrite, RecordState, Store, StoredRecord

__all__ = [
    "OutboxItem", "OutboxStatus", "QueuedWrite", "RecordState", "Release", "ReleaseLog", "Store", "StoredRecord",
    "create_schema", "make_engine",
]
