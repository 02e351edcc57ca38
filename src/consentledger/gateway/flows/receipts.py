"""Offline receipts served by a gateway: an access's entries, block header and trie proofs, for those it concerns.

A receipt (`consentledger.receipts`) proves an access with no node at hand. The gateway builds it
from its node for the record's data subject, the access's requester, the record's custodian (each
the member itself or one of its agency's clients) and any ACTIVE auditor. Anyone else gets the same
404 as for an access that does not exist, so the route tells nothing of others' records.
"""

from __future__ import annotations

import logging
from typing import Any

from consentledger.errors import ConsentLedgerError, ContractRevertError, NotFoundError
from consentledger.gateway.auth import Caller
from consentledger.gateway.runtime import Gateway
from consentledger.receipts.build import build_receipt
from consentledger.types import AccessEntry, MemberStatus, Role

log = logging.getLogger(__name__)


def receipt_path(record: str, seq: int) -> str:
    """Return the route a signed GET fetches the receipt of access `seq` to `record` from."""
    return f"/v1/receipts/{record}/{seq}"


def receipt_of(gw: Gateway, entry: AccessEntry) -> dict[str, Any] | None:
    """Return the receipt of an access this gateway just recorded, for its answer; None if the node cannot give one.

    The data is already released: a node failing to give the proofs must not fail the answer. The
    requester then fetches the receipt later (`GET /v1/receipts/{record}/{seq}`).
    """
    try:
        return build_receipt(gw.ledger, bytes(entry.record), entry.seq, block=entry.block_number).to_json()
    except ConsentLedgerError as exc:
        log.warning("no receipt for access %s of record 0x%s: %s", entry.seq, bytes(entry.record).hex(), exc)
        return None


def access_receipt(gw: Gateway, caller: Caller, record: bytes, seq: int) -> dict[str, Any]:
    """Return the receipt of access `seq` to `record` as JSON, if the caller may see it; NotFoundError otherwise."""
    missing = NotFoundError(f"no access {seq} to record 0x{record.hex()} that this caller may see")
    try:
        info = gw.chain.record(record)
        receipt = build_receipt(gw.ledger, record, seq, log_range=gw.settings.logs_block_range)
    except (ContractRevertError, NotFoundError):
        raise missing from None
    who = (gw.org if caller.client is not None else caller.address).lower()  # a client speaks for its agency
    parties = {info.subject.lower(), info.custodian.lower(), receipt.links[0].requester.lower()}
    if who not in parties and not _auditor(gw, who):
        raise missing
    return receipt.to_json()


def _auditor(gw: Gateway, account: str) -> bool:
    member = gw.chain.member(account)
    return member.status is MemberStatus.ACTIVE and Role.AUDITOR in member.roles
