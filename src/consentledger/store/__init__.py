"""The gateway's database: records, seen request nonces and the chain-write outbox."""

from consentledger.store.db import create_schema, make_engine
from consentledger.store.repository import OutboxItem, OutboxStatus, RecordState, Store, StoredRecord

__all__ = ["OutboxItem", "OutboxStatus", "RecordState", "Store", "StoredRecord", "create_schema", "make_engine"]
