"""Opening databases: URL handling, SQLite connection settings, idempotent schema creation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from consentledger.audit import create_index_schema
from consentledger.errors import ConfigurationError
from consentledger.store import create_schema, make_engine
from pg_schema import POSTGRES_URL, postgres_schema_engine


def test_postgresql_url_is_rewritten_to_psycopg() -> None:
    """A plain postgresql:// URL gets the psycopg 3 driver."""
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    assert engine.url.drivername == "postgresql+psycopg"
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT 1")) == 1
    engine.dispose()


def test_sqlite_file_gets_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    """Every SQLite connection runs in WAL mode with foreign keys on and a 5 s busy timeout."""
    path = tmp_path / "nested" / "dir" / "gateway.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.scalar(text("PRAGMA journal_mode")) == "wal"
        assert conn.scalar(text("PRAGMA foreign_keys")) == 1
        assert conn.scalar(text("PRAGMA busy_timeout")) == 5000
    assert path.exists()
    engine.dispose()


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "sqlite+aiosqlite:///x.db", "not a url"])
def test_unsupported_urls_are_refused(url: str) -> None:
    """Only SQLite and PostgreSQL (psycopg) URLs are accepted."""
    with pytest.raises(ConfigurationError):
        make_engine(url)


def test_create_schema_is_idempotent(engine: Engine) -> None:
    """Creating the schema again on a populated database changes nothing."""
    create_schema(engine)
    create_schema(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"records", "seen_nonces", "outbox"} <= tables
    assert "ix_outbox_status" in {i["name"] for i in inspect(engine).get_indexes("outbox")}


def test_replicas_creating_the_schema_at_once_all_succeed() -> None:
    """Four processes' engines creating the gateway's and the index's tables on one new PostgreSQL schema at once."""
    first, drop = postgres_schema_engine()
    with first.connect() as conn:
        schema = conn.scalar(text("SELECT current_schema()"))
    engines = [make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}) for _ in range(4)]
    start = threading.Barrier(len(engines))

    def create(engine: Engine) -> None:
        start.wait()
        create_schema(engine)
        create_index_schema(engine)

    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(create, engines))
        tables = set(inspect(first).get_table_names())
        assert {"records", "outbox", "signer_nonces", "idx_cursor"} <= tables
    finally:
        for engine in engines:
            engine.dispose()
        drop()
