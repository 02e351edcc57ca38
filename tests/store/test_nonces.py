"""Signed-request nonces: a replay is refused, also by a restarted gateway; expired ones are purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consentledger.store import Store

from .conftest import CUSTODIAN, SUBJECT

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_replayed_nonce_is_refused(store: Store) -> None:
    """The first use of (signer, nonce) is accepted; a second is refused."""
    assert store.remember_nonce(CUSTODIAN, "0x01", NOW + timedelta(seconds=60))
    assert not store.remember_nonce(CUSTODIAN, "0x01", NOW + timedelta(seconds=60))


def test_replay_is_refused_after_a_restart(store: Store) -> None:
    """A new Store over the same database (a restarted gateway) still refuses the replay."""
    store.remember_nonce(CUSTODIAN, "0x01", NOW + timedelta(seconds=60))
    assert not Store(store.engine).remember_nonce(CUSTODIAN.lower(), "0x01", NOW + timedelta(seconds=60))


def test_nonces_are_per_signer(store: Store) -> None:
    """Another signer may use the same nonce value."""
    assert store.remember_nonce(CUSTODIAN, "0x01", NOW)
    assert store.remember_nonce(SUBJECT, "0x01", NOW)


def test_purge_forgets_only_expired_nonces(store: Store) -> None:
    """purge_nonces removes nonces that expired before `now` and returns how many."""
    store.remember_nonce(CUSTODIAN, "0xold", NOW - timedelta(seconds=1))
    store.remember_nonce(CUSTODIAN, "0xnew", NOW + timedelta(seconds=1))
    store.remember_nonce(SUBJECT, "0xold-other-zone", (NOW - timedelta(minutes=5)).astimezone(
        datetime.now().astimezone().tzinfo))
    assert store.purge_nonces(NOW) == 2
    assert store.remember_nonce(CUSTODIAN, "0xold", NOW + timedelta(seconds=60))
    assert not store.remember_nonce(CUSTODIAN, "0xnew", NOW + timedelta(seconds=60))
