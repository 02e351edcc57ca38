"""The leader lock: one holder at a time across replicas on PostgreSQL; always granted on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Engine, text

from consentledger.store import Store, make_engine
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


def test_agencies_in_separate_schemas_each_have_their_leader() -> None:
    """Two stores in separate schemas of one PostgreSQL database both lead under the same lock name."""
    (first, drop_first), (second, drop_second) = postgres_schema_engine(), postgres_schema_engine()
    try:
        with Store(first).leader_lock("consentledger-relay") as held, \
                Store(second).leader_lock("consentledger-relay") as other_held:
            assert held and other_held
    finally:
        drop_first()
        drop_second()


def _other_replica(engine: Engine) -> tuple[Engine, Callable[[], None]]:
    """Return another engine on the same store (the same schema), as a second replica opens it."""
    if engine.dialect.name != "postgresql":
        return engine, lambda: None
    with engine.connect() as conn:
        schema = conn.scalar(text("SELECT current_schema()"))
    other = make_engine(engine.url.render_as_string(hide_password=False),
                        connect_args={"options": f"-csearch_path={schema}"})
    return other, other.dispose
