"""The leader lock: one holder at a time across replicas on PostgreSQL; always granted on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Engine

from consentledger.store import Store
from pg_schema import postgres_schema_engine


def test_leader_lock_is_exclusive_across_engines(store: Store) -> None:
    """While one replica holds the lock another's try fails; after release it succeeds.

    On SQLite (one process by design) every try succeeds.
    """
    name = f"relay-{uuid.uuid4().hex}"  # advisory locks are database-wide: never share a name between runs
    other_engine, drop = _other_replica(store.engine)
    other = Store(other_engine)
    try:
        with store.leader_lock(name) as held:
            assert held
            with other.leader_lock(name) as also_held:
                assert also_held is (store.engine.dialect.name == "sqlite")
        with other.leader_lock(name) as held_after_release:
            assert held_after_release
    finally:
        drop()


def test_leader_lock_is_released_when_the_block_raises(store: Store) -> None:
    """An exception inside the block still releases the lock."""
    name = f"relay-{uuid.uuid4().hex}"
    try:
        with store.leader_lock(name) as held:
            assert held
            raise RuntimeError("relay crashed")
    except RuntimeError:
        pass
    with store.leader_lock(name) as held_again:
        assert held_again
    if store.engine.dialect.name == "postgresql":
        assert store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def _other_replica(engine: Engine) -> tuple[Engine, Callable[[], None]]:
    if engine.dialect.name == "postgresql":
        return postgres_schema_engine()
    return engine, lambda: None
