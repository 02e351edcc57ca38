"""Recording accesses on chain: group-committed through the gateway's batcher, exactly once per Idempotency-Key.

The chain decides: each access comes back as its entry in the record's hash chain, or as its
refusal (recorded on chain too, naming the rule). A request asked with an Idempotency-Key is saved
with its signed batch before broadcast (`store.access_keys`), so a retry after a timeout or a crash
gets the access the first attempt recorded and never uses a consent twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from consentledger.chain.batch import AccessRequest, batch_outcomes
from consentledger.chain.relay import NONCE_CHECK
from consentledger.chain.sender import TxReceipt
from consentledger.errors import (
    ConsentLedgerError,
    ContractRevertError,
    IdempotencyConflictError,
    TransactionNotMinedError,
)
from consentledger.gateway.runtime import Gateway
from consentledger.store.access_keys import Idempotency, KeyedAccess
from consentledger.types import AccessEntry, AccessRefusal


def record_access(gw: Gateway, request: AccessRequest, idempotency: Idempotency | None = None) -> AccessEntry:
    """Record one access on chain (group-committed with whatever else is asked now); its refusal raises.

    A refused access is on the ledger too (AccessRefused), and raises the ContractRevertError naming
    the rule, exactly as the contract's own revert would. With `idempotency`, a retry gets the
    access the first request recorded (see `store.access_keys`), never a second one.
    """
    if idempotency is None:
        outcome = gw.batcher.submit(request).result()
    else:
        with gw.access_keys.claim([idempotency]):
            outcome = resumed(gw, idempotency) or gw.batcher.submit(request, idempotency=idempotency).result()
    if isinstance(outcome, AccessRefusal):
        raise outcome.error()
    return outcome


def record_all(
    gw: Gateway, requests: Sequence[AccessRequest], idempotencies: Sequence[Idempotency] | None = None,
) -> list[AccessEntry | AccessRefusal | ConsentLedgerError]:
    """Record many accesses on chain (group-committed); return each one's entry, refusal, or why it is not on chain.

    With `idempotencies` (one key per request), requests a retry finds already recorded are not
    recorded again (see `record_access`).
    """
    if idempotencies is None:
        return list(gw.batcher.record(requests))
    with gw.access_keys.claim(idempotencies):
        outcomes: list[AccessEntry | AccessRefusal | ConsentLedgerError | None] = []
        for ask in idempotencies:
            try:
                outcomes.append(resumed(gw, ask))
            except ConsentLedgerError as exc:
                outcomes.append(exc)
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        fresh = gw.batcher.record([requests[i] for i in todo], [idempotencies[i] for i in todo])
        for i, outcome in zip(todo, fresh, strict=True):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]


def resumed(gw: Gateway, ask: Idempotency) -> AccessEntry | AccessRefusal | None:
    """Return what the chain decided for an access asked earlier with this key, or None if it must be recorded.

    Mined: its outcome, read from the receipt. Signed but not mined: the saved transaction is
    broadcast again and awaited. Never to be mined (the signer's nonce moved past it without it, or
    its batch reverted as a whole): the key is forgotten and None says to record the access anew.
    """
    found = gw.access_keys.find(ask.caller, ask.key)
    if found is None:
        return None
    if found.idempotency.request_hash != ask.request_hash:
        raise IdempotencyConflictError("this Idempotency-Key was already used for a different access request")
    receipt = gw.sender.receipt(found.tx_hash)
    if receipt is None and gw.sender.mined_nonce() > found.nonce:
        receipt = gw.sender.receipt(found.tx_hash)  # mined just now, or its nonce went to another transaction
        if receipt is None:
            gw.access_keys.forget(ask)
            return None
    if receipt is None:
        receipt = _resent(gw, found)
    if receipt is None or receipt["status"] != 1:
        gw.access_keys.forget(ask)  # never mined (its nonce went elsewhere) or reverted as a whole: none on chain
        return None
    return batch_outcomes(gw.ledger, receipt, found.size)[found.index]


def _resent(gw: Gateway, found: KeyedAccess) -> TxReceipt | None:
    """Broadcast a saved batch again; return its receipt, or None once its nonce went to another transaction.

    The signer's nonce is looked at every NONCE_CHECK seconds while waiting: another replica may use
    the nonce of a batch a dead one saved but never sent, and then no receipt comes.
    """
    gw.sender.broadcast(found.raw_tx, resend=True)
    deadline = time.monotonic() + gw.sender.timeout
    while True:
        try:
            wait = max(0.0, min(NONCE_CHECK, deadline - time.monotonic()))
            return gw.sender.wait_receipt(found.tx_hash, timeout=wait)
        except TransactionNotMinedError:
            if gw.sender.mined_nonce() > found.nonce:
                return gw.sender.receipt(found.tx_hash)  # mined just now, or never will be
            if time.monotonic() >= deadline:
                raise
        except ContractRevertError:
            return gw.sender.receipt(found.tx_hash)
