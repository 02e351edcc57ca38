"""The outbox relay: each outbox row becomes exactly one on-chain effect, whatever crashes when.

A pending row is estimated, signed with an allocated nonce and persisted (status `sent`, with the
raw transaction) before it is broadcast; only the receipt marks it done. A `sent` row found later
(after a restart or a timeout) is never signed again: the same raw transaction is rebroadcast and
its receipt awaited. On PostgreSQL one replica runs it at a time (`Store.leader_lock`).

The relay should be the only user of its signer's nonces, but the signer's key may be used
elsewhere too (an operator's script, another tool). A transaction whose nonce another transaction
of the signer took can never be mined: refused at its first broadcast for a used nonce, or found
later with the chain's nonce past its own and no receipt for its hash. Then, and only then, the row
goes back to pending without its transaction (`Store.unsign`) and is signed again with a fresh
nonce, so it still has exactly one on-chain effect and a queued write is not lost to a stolen nonce.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3.contract.contract import ContractFunction

from consentledger.chain.ledger import Ledger
from consentledger.chain.sender import TransactionSender, nonce_clash
from consentledger.consent import Consent, consent_id
from consentledger.errors import (
    ContractRevertError,
    InsufficientFundsError,
    NotFoundError,
    TransactionFailedError,
    TransactionNotMinedError,
)
from consentledger.store.repository import OutboxItem, OutboxStatus, RecordState, Store, StoredRecord
from consentledger.types import ConsentStatus, TombstoneReason

log = logging.getLogger(__name__)

Payload = Mapping[str, Any]

MAX_RESIGNS = 3
"""How many times in one run a row is signed again after its nonce was taken (then it waits for the next run)."""
NONCE_CHECK = 1.0
"""Seconds between looks at the signer's nonce while a sent row awaits its receipt."""


class _SignAgain(Exception):
    """A row's transaction can never be mined (its nonce was taken) and the row is pending again."""


class _Unfinished(Exception):
    """A row of a pipelined window was left unfinished (not mined in time, or waiting for funds)."""

    def __init__(self, item: OutboxItem, error: TransactionFailedError) -> None:
        super().__init__(str(error))
        self.item = item
        self.error = error


@dataclass(frozen=True)
class OutboxKind:
    """How the relay handles one kind of outbox row.

    `build` turns the payload into the contract call. `already_done` says whether a revert means
    the effect is already on chain (a retry after a crash, say). `on_done` updates the store once
    the effect is on chain; it must be idempotent (a crash may run it twice). `on_refused` updates
    the store when the chain refuses the write for good with a rule (before the row is failed).
    `independent` says whether a row's effect needs no other row's but one of its own record's,
    so it may be sent before the rows ahead of it are mined (see `OutboxRelay`'s `pipeline`).
    """

    build: Callable[[Ledger, Payload], ContractFunction]
    already_done: Callable[[Ledger, Payload, str, ContractRevertError], bool] = lambda *_: False
    on_done: Callable[[Store, OutboxItem], None] = lambda *_: None
    on_refused: Callable[[Store, OutboxItem, ContractRevertError], None] = lambda *_: None
    independent: Callable[[Payload], bool] = lambda _: False


class OutboxRelay:
    """Sends the outbox rows of one signer, oldest first, one on-chain effect per row.

    One row at a time, each mined before the next is signed, costs a block per row on a chain that
    mines at an interval (Besu QBFT: 2 N seconds for N ingests at a 2 s period). So up to `pipeline`
    consecutive pending rows that are independent (registrations without sources, tombstones, of
    distinct records) are signed and broadcast back to back with consecutive nonces, then settled
    in order: they land in one block. Anything else goes alone, as before.
    """

    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        sender: TransactionSender,
        *,
        rebroadcast_after: float = 30.0,
        kinds: Mapping[str, OutboxKind] | None = None,
        batch: int = 100,
        pipeline: int = 1,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.sender = sender
        self.rebroadcast_after = rebroadcast_after
        self.kinds: Mapping[str, OutboxKind] = KINDS if kinds is None else kinds
        self.batch = batch
        self.pipeline = max(1, pipeline)
        self.fault = fault  # crash tests only (`gateway.faults`): called at each step a row takes

    def run_once(self) -> int:
        """Relay up to `batch` unfinished rows of the sender; return how many finished (done or failed).

        A row whose transaction is not mined within the sender's timeout, or that the node will not
        take back, stays `sent` and ends the run: the next run rebroadcasts it first.
        ChainUnavailableError propagates; nothing is lost by it either. A signer that cannot pay leaves
        its rows pending (InsufficientFundsError ends the run like an unmined transaction).
        """
        finished = 0
        items = self.store.pending(self.batch, signer=self.sender.address)
        start = 0
        while start < len(items):
            window = self._window(items, start)
            start += len(window)
            try:
                finished += self._relay(window[0]) if len(window) == 1 else self._relay_window(window)
            except _Unfinished as unfinished:
                self._unfinished(unfinished.item, unfinished.error)
                break
            except TransactionFailedError as exc:
                self._unfinished(window[0], exc)
                break
        return finished

    def _unfinished(self, item: OutboxItem, exc: TransactionFailedError) -> None:
        log.warning("outbox row %s unfinished: %s; retrying on the next run", item.id, exc)
        self.store.note_attempt(item.id, str(exc))

    def _window(self, items: Sequence[OutboxItem], start: int) -> list[OutboxItem]:
        """Return the rows from `start` to send together: independent pending rows of distinct records, or one row."""
        window = [items[start]]
        records = {items[start].record_id}
        while (len(window) < self.pipeline and start + len(window) < len(items)
               and self._pipelinable(window[-1]) and self._pipelinable(items[start + len(window)])
               and items[start + len(window)].record_id not in records):
            window.append(items[start + len(window)])
            records.add(window[-1].record_id)
        return window

    def _pipelinable(self, item: OutboxItem) -> bool:
        kind = self.kinds.get(item.kind)
        return (kind is not None and item.status is OutboxStatus.PENDING and item.record_id is not None
                and kind.independent(item.payload))

    def _relay_window(self, window: Sequence[OutboxItem]) -> int:
        """Sign and broadcast each row back to back, then settle them in order; return how many finished.

        The first row the node refuses (or whose nonce was taken) ends the signing: the rows after
        it stay pending for the next run, so no later nonce waits behind a gap.
        """
        finished, again = 0, None
        sent: list[OutboxItem] = []
        for item in window:
            try:
                with self.sender.nonces.signing_lock(self.sender.address):
                    row = self.sign_and_persist(item)
                    if row is None or not self._first_broadcast(row):
                        finished += 1
                        if row is not None:
                            break  # refused and failed: its nonce is free again, sign nothing after it
                        continue
            except _SignAgain:
                again = item
                break
            except TransactionFailedError as exc:  # e.g. the signer cannot pay: the row waits, pending
                self._settle_all(sent)
                raise _Unfinished(item, exc) from exc
            sent.append(row)
        finished += self._settle_all(sent)
        if again is not None:
            pending = self.store.get_outbox(again.id)
            if pending is not None and pending.status is OutboxStatus.PENDING:
                try:
                    finished += self._relay(pending)
                except TransactionFailedError as exc:
                    raise _Unfinished(pending, exc) from exc
        return finished

    def _settle_all(self, sent: Sequence[OutboxItem]) -> int:
        """Settle broadcast rows in nonce order; one left unmined ends the run (_Unfinished)."""
        finished = 0
        for row in sent:
            try:
                try:
                    finished += self._settle(row)
                except _SignAgain:
                    pending = self.store.get_outbox(row.id)
                    if pending is None or pending.status is not OutboxStatus.PENDING:
                        finished += 1  # another relay took it over meanwhile
                    else:
                        finished += self._relay(pending)
            except TransactionFailedError as exc:
                raise _Unfinished(row, exc) from exc
        return finished

    def sign_and_persist(self, item: OutboxItem) -> OutboxItem | None:
        """Sign a pending row and persist its transaction (status sent); broadcast nothing.

        Return the row as now stored, or None when there is nothing to broadcast: its effect is
        already on chain (marked done), estimation reverted (marked failed, naming the rule), or
        another relay signed it first.
        """
        kind = self.kinds.get(item.kind)
        if kind is None:
            self._fail(item, f"unknown outbox kind {item.kind!r}")
            return None
        try:
            call = kind.build(self.ledger, item.payload)
        except (KeyError, TypeError, ValueError) as exc:
            self._fail(item, f"malformed {item.kind} payload: {exc!r}")
            return None
        try:
            signed = self.sender.sign(call)
        except ContractRevertError as exc:
            self._finish_reverted(item, kind, exc)
            return None
        try:
            persisted = self.store.mark_sent(item.id, signed.nonce, signed.raw, "0x" + signed.tx_hash.hex())
        except BaseException:
            self.sender.nonces.resync(self.sender.address)  # this transaction will never be sent
            raise
        if not persisted:
            self.sender.nonces.resync(self.sender.address)
            return None
        self.fault("outbox-signed")
        return self.store.get_outbox(item.id)

    def _relay(self, item: OutboxItem) -> bool:
        for _ in range(MAX_RESIGNS + 1):
            try:
                return self._relay_once(item)
            except _SignAgain:
                again = self.store.get_outbox(item.id)
                if again is None or again.status is not OutboxStatus.PENDING:
                    return True  # another relay took it over meanwhile
                item = again
        raise TransactionFailedError(f"outbox row {item.id}: its nonce was taken {MAX_RESIGNS + 1} times in a row")

    def _relay_once(self, item: OutboxItem) -> bool:
        if item.status is OutboxStatus.PENDING:
            with self.sender.nonces.signing_lock(self.sender.address):
                sent = self.sign_and_persist(item)
                if sent is None or not self._first_broadcast(sent):
                    return True
            return self._settle(sent)
        assert item.raw_tx is not None
        if self._nonce_taken_by_another(item):
            # Signed but never broadcast (a replica died in between), its nonce since used: no need
            # to wait `rebroadcast_after` for a receipt that cannot come.
            self._sign_again(item, f"nonce {item.tx_nonce} was used by another transaction before "
                                   f"{item.tx_hash} was sent")
        self.sender.broadcast(item.raw_tx, resend=True)
        return self._settle(item)

    def _first_broadcast(self, item: OutboxItem) -> bool:
        """Broadcast a just-signed row; return False if the node refused it (then it is failed).

        Refused for a used nonce, the row is signed again instead (_SignAgain). Called under the
        signing lock.
        """
        assert item.raw_tx is not None
        try:
            self.sender.broadcast(item.raw_tx)
        except InsufficientFundsError:
            # Refused for the signer's funds, so never in the pool: the row waits, unsigned, for funding.
            self.sender.nonces.resync(self.sender.address)
            assert item.tx_hash is not None
            self.store.unsign(item.id, item.tx_hash, "the signer cannot pay for the transaction; waiting for funds")
            raise
        except TransactionFailedError as exc:
            # Refused outright, so it can never be mined: free its nonce for the rows after it.
            self.sender.nonces.resync(self.sender.address)
            if nonce_clash(exc) or self._nonce_taken_by_another(item):
                self._sign_again(item, f"nonce {item.tx_nonce} was taken by another transaction: {exc}")
            self._fail(item, f"node refused the transaction: {exc}")
            return False
        self.fault("outbox-broadcast")
        return True

    def _sign_again(self, item: OutboxItem, why: str) -> None:
        """Put a row whose transaction can never be mined back to pending, then raise _SignAgain."""
        assert item.tx_hash is not None
        log.warning("outbox row %s (%s): %s; signing it again with a fresh nonce", item.id, item.kind, why)
        self.store.unsign(item.id, item.tx_hash, f"{why}; signed again")
        with self.sender.nonces.signing_lock(self.sender.address):  # reentrant: may already be held
            self.sender.nonces.resync(self.sender.address)
        raise _SignAgain

    def _settle(self, item: OutboxItem) -> bool:
        """Wait for a sent row's receipt, rebroadcasting meanwhile, and record the outcome."""
        kind = self.kinds.get(item.kind, _UNKNOWN_KIND)  # a kind dropped since signing still settles
        try:
            call: ContractFunction | None = kind.build(self.ledger, item.payload)  # replays a mined revert
        except (KeyError, TypeError, ValueError):
            call = None
        try:
            self._await_receipt(item, call)
        except TransactionNotMinedError:
            if not self._nonce_taken_by_another(item):
                raise
            self._sign_again(item, f"nonce {item.tx_nonce} was used by another transaction: {item.tx_hash} can "
                                   "never land")
        except ContractRevertError as exc:
            self._finish_reverted(item, kind, exc)
        except InsufficientFundsError:
            raise  # a rebroadcast refused for funds: the row stays sent, and is rebroadcast once funded
        except TransactionFailedError as exc:  # mined, reverted, no decodable reason
            self._fail(item, str(exc))
        else:
            self.fault("outbox-mined")
            self._finish_done(item, kind)
        return True

    def _await_receipt(self, item: OutboxItem, call: ContractFunction | None) -> None:
        assert item.tx_hash is not None and item.raw_tx is not None
        tx_hash = bytes.fromhex(item.tx_hash.removeprefix("0x"))
        deadline = time.monotonic() + self.sender.timeout
        rebroadcast_at = time.monotonic() + self.rebroadcast_after
        while True:
            # Look at the signer's nonce every NONCE_CHECK seconds: another transaction (of another
            # replica, say) may take this one's nonce at any time, and then no receipt will come.
            wait = max(0.0, min(NONCE_CHECK, rebroadcast_at - time.monotonic(), deadline - time.monotonic()))
            try:
                self.sender.wait_receipt(tx_hash, call, timeout=wait)
                return
            except TransactionNotMinedError as exc:
                if time.monotonic() >= deadline or self._nonce_taken_by_another(item):
                    raise
                if time.monotonic() >= rebroadcast_at:
                    self.store.note_attempt(item.id, f"{exc}; rebroadcast")
                    self.sender.broadcast(item.raw_tx, resend=True)
                    rebroadcast_at = time.monotonic() + self.rebroadcast_after

    def _nonce_taken_by_another(self, item: OutboxItem) -> bool:
        """Return whether another transaction used the row's nonce on chain, so ours can never land."""
        assert item.tx_nonce is not None and item.tx_hash is not None
        if self.sender.mined_nonce() <= item.tx_nonce:
            return False
        return self.sender.receipt(bytes.fromhex(item.tx_hash.removeprefix("0x"))) is None

    def _finish_reverted(self, item: OutboxItem, kind: OutboxKind, exc: ContractRevertError) -> None:
        if not kind.already_done(self.ledger, item.payload, self.sender.address, exc):
            kind.on_refused(self.store, item, exc)  # first: a crash before _fail just runs it again
            self._fail(item, str(exc))
            return
        log.info("outbox row %s: effect already on chain (%s)", item.id, exc.rule)
        self._finish_done(item, kind)

    def _finish_done(self, item: OutboxItem, kind: OutboxKind) -> None:
        kind.on_done(self.store, item)  # first: a crash before mark_done just runs it again
        self.store.mark_done(item.id)
        self.fault("outbox-done")

    def _fail(self, item: OutboxItem, error: str) -> None:
        log.warning("outbox row %s (%s) failed: %s", item.id, item.kind, error)
        self.store.mark_failed(item.id, error)


# ---------------------------------------------------------------------- kinds


def register_record_payload(record: StoredRecord) -> dict[str, Any]:
    """Return the outbox payload of a "register_record" row for a stored record."""
    return {
        "record_id": record.record_id,
        "subject": record.subject,
        "category": record.category,
        "commitment": "0x" + record.commitment.hex(),
        "derived_from": list(record.derived_from),
    }


def tombstone_payload(record_id: str, reason: TombstoneReason) -> dict[str, Any]:
    """Return the outbox payload of a "tombstone" row."""
    return {"record_id": record_id, "reason": int(reason)}


def revocation_payload(consent: Consent, signature: bytes) -> dict[str, Any]:
    """Return the outbox payload of a "revoke_consent" row: the terms and the subject's Revocation signature."""
    return {"consent": consent.to_json(), "signature": "0x" + signature.hex()}


def _bytes32(value: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}: {value}")
    return raw


def _build_register(ledger: Ledger, payload: Payload) -> ContractFunction:
    subject = to_checksum_address(payload["subject"]) if payload["subject"] else "0x" + "00" * 20
    sources: Sequence[str] = payload.get("derived_from", ())
    return ledger.access.functions.registerRecord(
        _bytes32(payload["record_id"]), subject, int(payload["category"]), _bytes32(payload["commitment"]),
        [_bytes32(s) for s in sources],
    )


def _build_register_aggregate(ledger: Ledger, payload: Payload) -> ContractFunction:
    return ledger.access.functions.registerAggregate(
        _bytes32(payload["record_id"]), int(payload["category"]), _bytes32(payload["commitment"]),
        [_bytes32(s) for s in payload["derived_from"]],
    )


def _registered_already(ledger: Ledger, payload: Payload, signer: str, exc: ContractRevertError) -> bool:
    if exc.rule != "RecordRegistryRecordExists":
        return False
    on_chain = ledger.record(_bytes32(payload["record_id"]))
    return on_chain.custodian == signer and on_chain.commitment == _bytes32(payload["commitment"])


def _mark_registered(store: Store, item: OutboxItem) -> None:
    try:
        # A record erased before its registration landed stays shredded: never bring it back.
        store.set_record_state(item.record_id or item.payload["record_id"], RecordState.REGISTERED,
                               unless=RecordState.SHREDDED)
    except NotFoundError:
        pass  # queued without a stored record (enqueue): nothing to update


_SOURCE_GONE = ("RecordRegistryRecordTombstoned", "RecordRegistrySourceExpired")
"""Rules refusing a registration because a source is tombstoned or past retention (it never comes back)."""


def _shred_if_sources_gone(store: Store, item: OutboxItem, exc: ContractRevertError) -> None:
    # A derived record whose source died before its registration landed can never be registered:
    # its data must not outlive the source here either. Not on chain, so there is nothing to tombstone.
    if exc.rule in _SOURCE_GONE and item.record_id is not None:
        store.shred_tombstoned([item.record_id])


def _build_tombstone(ledger: Ledger, payload: Payload) -> ContractFunction:
    return ledger.access.functions.tombstone(_bytes32(payload["record_id"]), int(TombstoneReason(payload["reason"])))


def _tombstoned_already(ledger: Ledger, payload: Payload, signer: str, exc: ContractRevertError) -> bool:
    if exc.rule != "RecordRegistryRecordTombstoned":
        return False
    on_chain = ledger.record(_bytes32(payload["record_id"]))
    return on_chain.custodian == signer and on_chain.tombstone == TombstoneReason(payload["reason"])


def _build_revocation(ledger: Ledger, payload: Payload) -> ContractFunction:
    consent = Consent.from_json(dict(payload["consent"]))
    signature = bytes.fromhex(str(payload["signature"]).removeprefix("0x"))
    return ledger.access.functions.revokeConsentBySignature(consent.as_tuple(), signature)


def _revoked_already(ledger: Ledger, payload: Payload, signer: str, exc: ContractRevertError) -> bool:
    # Whoever revoked it (the subject directly, an earlier row, another gateway), the consent is dead.
    if exc.rule != "ConsentRegistryConsentRevoked":
        return False
    consent = Consent.from_json(dict(payload["consent"]))
    status, _ = ledger.consent_state(consent_id(consent, ledger.domain()))
    return status is ConsentStatus.REVOKED


def _unbuildable(ledger: Ledger, payload: Payload) -> ContractFunction:
    raise ValueError("unknown outbox kind")


_UNKNOWN_KIND = OutboxKind(_unbuildable)

def _without_sources(payload: Payload) -> bool:
    return not payload.get("derived_from")


KINDS: dict[str, OutboxKind] = {
    "register_record": OutboxKind(_build_register, _registered_already, _mark_registered, _shred_if_sources_gone,
                                  independent=_without_sources),
    "register_aggregate": OutboxKind(_build_register_aggregate, _registered_already, _mark_registered,
                                     _shred_if_sources_gone),
    "tombstone": OutboxKind(_build_tombstone, _tombstoned_already, independent=lambda _: True),
    "revoke_consent": OutboxKind(_build_revocation, _revoked_already),
}
"""The outbox kinds the relay knows; add an entry to relay a new kind of chain write."""
