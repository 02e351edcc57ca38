"""The auditor's tools: an SQL index of the chain's events, access traces, refused attempts, and verification."""

from consentledger.audit.checks import Discrepancy, DiscrepancyKind
from consentledger.audit.events import AccessRow, DecodedEvent, EventDecoder, decode_access_log
from consentledger.audit.indexer import Indexer, SyncProgress, SyncResult
from consentledger.audit.rules import RULE_SENTENCES, Rule, RuleDecoder, explain
from consentledger.audit.tables import create_index_schema
from consentledger.audit.trace import RefusalLine, TraceLine, refusals, trace
from consentledger.audit.verify import VerifyReport, verify
from consentledger.audit.writer import bulk_insert_accesses

__all__ = [
    "AccessRow",
    "DecodedEvent",
    "Discrepancy",
    "DiscrepancyKind",
    "EventDecoder",
    "Indexer",
    "RULE_SENTENCES",
    "RefusalLine",
    "Rule",
    "RuleDecoder",
    "SyncProgress",
    "SyncResult",
    "TraceLine",
    "VerifyReport",
    "bulk_insert_accesses",
    "create_index_schema",
    "decode_access_log",
    "explain",
    "refusals",
    "trace",
    "verify",
]
