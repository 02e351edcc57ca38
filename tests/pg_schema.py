"""A private PostgreSQL schema per test, on the server every development machine and CI runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Engine, text

from consentledger.store import make_engine

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
"""The PostgreSQL every development machine and CI runs (trust auth)."""


def postgres_schema_engine(prefix: str = "cl_test") -> tuple[Engine, Callable[[], None]]:
    """Return an engine confined to a new, uniquely named schema and a function that drops it."""
    schema = f"{prefix}_{uuid.uuid4().hex}"
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
