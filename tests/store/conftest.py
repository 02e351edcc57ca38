"""Store fixtures: every store test runs on SQLite (a temp file) and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import Engine

from consentledger.store import Store, StoredRecord, create_schema, make_engine
from consentledger.types import Address
from pg_schema import postgres_schema_engine

CUSTODIAN = Address(Account.from_key(b"\x01" * 32).address)
SUBJECT = Address(Account.from_key(b"\x02" * 32).address)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database with the schema created: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        sqlite = make_engine(f"sqlite:///{tmp_path / 'db' / 'gateway.sqlite'}")
        create_schema(sqlite)
        yield sqlite
        sqlite.dispose()
        return
    postgres, drop = postgres_schema_engine("cl_test")
    create_schema(postgres)
    try:
        yield postgres
    finally:
        drop()


@pytest.fixture
def store(engine: Engine) -> Store:
    """A Store over the parametrized backend."""
    return Store(engine)


@pytest.fixture
def make_record() -> Callable[..., StoredRecord]:
    """Return a factory of distinct StoredRecords; keyword arguments override any field."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides: Any) -> StoredRecord:
        n = next(counter)
        fields: dict[str, Any] = {
            "record_id": "0x" + f"{n:064x}",
            "custodian": CUSTODIAN,
            "subject": SUBJECT,
            "category": 1,
            "ciphertext": b"sealed" + bytes([n % 256]) * 40,
            "wrapped_dek": b"wrapped-dek" + bytes(8),
            "kek_id": "kek-2024",
            "salt": bytes([n % 256]) * 16,
            "commitment": bytes([n % 256]) * 32,
            "request_hash": f"hash-{n}",
        }
        fields.update(overrides)
        return StoredRecord(**fields)

    return make

