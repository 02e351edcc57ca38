"""Audit fixtures: a fresh populated deployment per module, and index databases on both backends.

Store-backed tests run on SQLite (a temp file) and on the real PostgreSQL in a private schema,
as in tests/store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from consentledger.chain.node import LocalNode
from consentledger.store import make_engine

from .world import World, build_world

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""The PostgreSQL every development machine and CI runs (trust auth)."""


@pytest.fixture(scope="module")
def world(ganache: LocalNode) -> World:
    """A fresh deployment on the session ganache, populated with every kind of event."""
    return build_world(ganache.rpc_url)


def postgres_schema_engine() -> tuple[Engine, Callable[[], None]]:
    """Return an engine confined to a new, uniquely named schema and a function that drops it."""
    schema = f"cl_audit_{uuid.uuid4().hex}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})

    def drop() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty index database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        sqlite = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
        yield sqlite
        sqlite.dispose()
        return
    postgres, drop = postgres_schema_engine()
    try:
        yield postgres
    finally:
        drop()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """An empty SQLite index database (for tests whose backend does not matter)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}")
    yield engine
    engine.dispose()
