"""Open the gateway's database: SQLite by default (a file), PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from consentledger.errors import ConfigurationError
from consentledger.store.tables import metadata

_SQLITE_PRAGMAS = (
    # WAL lets readers run while the relay writes; the busy timeout makes writers queue instead of failing.
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    # Crypto-shredding overwrites a record's key, ciphertext and salt: zero the freed bytes in the file too.
    "PRAGMA secure_delete=ON",
)


def make_engine(url: str, *, connect_args: Mapping[str, Any] | None = None) -> Engine:
    """Return an Engine for `url`: `sqlite:///path` or `postgresql[+psycopg]://...`.

    SQLite files get WAL, foreign keys, a 5 s busy timeout and secure delete on every connection, and their parent
    directory is created. `postgresql://` URLs are rewritten to the psycopg 3 driver.
    `connect_args` go to the driver (e.g. `{"options": "-csearch_path=tenant"}` on PostgreSQL).
    Raises ConfigurationError for any other URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"malformed database URL {url!r}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    args = dict(connect_args or {})
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args=args)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return create_engine(parsed.set(drivername="postgresql+psycopg"), connect_args=args, pool_pre_ping=True)
    raise ConfigurationError(f"unsupported database URL {parsed.drivername}://…: use sqlite:/// or postgresql://")


def create_schema(engine: Engine) -> None:
    """Create every table and index that does not exist yet (safe to call on every start)."""
    create_tables(engine, metadata)


def create_tables(engine: Engine, tables: MetaData) -> None:
    """Create the tables of `tables` that do not exist yet; replicas starting at once on PostgreSQL take turns.

    Two `CREATE TABLE` of one name at the same time fail on PostgreSQL's catalog, so the check and
    the creation run in one transaction under an advisory lock of the database's current schema.
    """
    if engine.dialect.name != "postgresql":
        tables.create_all(engine)
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('consentledger-schema:' || current_schema()))"))
        tables.create_all(conn)


def flush_deleted(engine: Engine) -> None:
    """Push overwritten bytes out of the database's side files (best effort; SQLite only).

    In WAL mode a changed page is appended to the `-wal` file and the old page stays in the main
    file until a checkpoint, so after shredding a full checkpoint writes the zeroed pages home and
    truncates the WAL. It waits for readers up to the busy timeout and gives up quietly if they stay;
    the next automatic checkpoint finishes the job. PostgreSQL keeps dead tuples until VACUUM.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
