"""What a custodian says of a record it destroyed: why, and where its tombstone is (queued or on chain)."""

from __future__ import annotations

from consentledger.audit.lifecycle import tombstones
from consentledger.errors import RecordDestroyedError
from consentledger.store import OutboxItem, OutboxStatus, Store
from consentledger.types import TombstoneReason

ON_CHAIN = "on chain"
_SHOWN = {OutboxStatus.PENDING: "queued", OutboxStatus.SENT: "sent", OutboxStatus.DONE: ON_CHAIN,
          OutboxStatus.FAILED: "failed"}


def write_status(write: OutboxItem) -> str:
    """Return how far a queued chain write got, as the API says it: queued, sent, on chain or failed."""
    return _SHOWN[write.status]


def destroyed(store: Store, record_id: str, on_chain: TombstoneReason | None = None) -> RecordDestroyedError:
    """Return the 410 refusal for a shredded or tombstoned record, naming the reason and its tombstone.

    The tombstone comes from the audit index (as it stands: tx and block) or else from the outbox
    (its write's status and tx, before the index has caught up); `on_chain` is the reason the
    chain gave when neither knows it.
    """
    record_id = record_id.lower()
    indexed = tombstones(store.engine, records=[record_id])
    if indexed:
        ended = indexed[0]
        reason, tombstone = ended.reason, {"status": ON_CHAIN, "tx_hash": ended.tx_hash, "block": ended.block}
    else:
        writes = [w for w in store.outbox_of_record(record_id) if w.kind == "tombstone"]
        if writes:
            reason = TombstoneReason(int(writes[-1].payload["reason"]))
            tombstone = {"status": write_status(writes[-1]), "tx_hash": writes[-1].tx_hash, "block": None}
        else:
            reason = on_chain or TombstoneReason.CUSTODIAN
            tombstone = {"status": ON_CHAIN if on_chain else "none", "tx_hash": None, "block": None}
    name = reason.name.lower()
    return RecordDestroyedError(
        record_id, name, f"record {record_id} was destroyed ({name}): its key and ciphertext no longer exist", tombstone
    )
