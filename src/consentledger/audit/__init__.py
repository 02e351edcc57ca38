"""The auditor's tools: an SQL index of the chain's events, access traces, and verification."""

from consentledger.audit.checks import Discrepancy, DiscrepancyKind
from consentledger.audit.events import AccessRow, DecodedEvent, EventDecoder, decode_access_log
from consentledger.audit.indexer import Indexer, SyncProgress, SyncResult
from consentledger.audit.tables import create_index_schema
from consentledger.audit.trace import TraceLine, trace
from consentledger.audit.verify import VerifyReport, verify
from consentledger.audit.writer import bulk_insert_accesses

__all__ = [
    "AccessRow",
    "DecodedEvent",
    "Discrepancy",
    "DiscrepancyKind",
    "EventDecoder",
    "Indexer",
    "SyncProgress",
    "SyncResult",
    "TraceLine",
    "VerifyReport",
    "bulk_insert_accesses",
    "create_index_schema",
    "decode_access_log",
    "trace",
    "verify",
]
