"""Audit fixtures: a fresh populated deployment per module, and index databases on both backends.

Store-backed tests run on SQLite (a temp file) and on the real PostgreSQL in a private schema,
as in tests/store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from consentledger.chain.node import LocalNode
from consentledger.store import make_engine
from pg_schema import postgres_schema_engine

from .world import World, build_world


@pytest.fixture(scope="module")
def world(ganache: LocalNode) -> World:
    """A fresh deployment on the session ganache, populated with every kind of event."""
    return build_world(ganache.rpc_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty index database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        sqlite = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
        yield sqlite
        sqlite.dispose()
        return
    postgres, drop = postgres_schema_engine("cl_audit")
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
