"""Idempotency-Keys in progress: held by one request, refused to any other, in this process and on other replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from consentledger.errors import IdempotencyConflictError
from consentledger.store import make_engine
from consentledger.store.key_claims import KeyClaims
from pg_schema import POSTGRES_URL, postgres_schema_engine

ANA = ("0xclerk-ana", "retry-1")
BEN = ("0xclerk-ben", "retry-1")  # the same key value from another caller


def test_a_held_key_is_refused_to_a_second_request_until_released(engine: Engine) -> None:
    """In one process (SQLite or PostgreSQL): a second claim of a held key is a conflict; other keys are not."""
    claims = KeyClaims(engine)
    try:
        with claims.claim([ANA]):
            with pytest.raises(IdempotencyConflictError, match="in progress"), claims.claim([ANA]):
                pass
            with claims.claim([BEN]):
                pass
        with claims.claim([ANA]):
            pass
    finally:
        claims.close()


@pytest.fixture
def replicas() -> Iterator[tuple[KeyClaims, KeyClaims, str]]:
    """Two replicas' claims over one PostgreSQL schema, and that schema's name."""
    first, drop = postgres_schema_engine()
    with first.connect() as conn:
        schema = str(conn.scalar(text("SELECT current_schema()")))
    second = _engine_on(schema)
    a, b = KeyClaims(first), KeyClaims(second)
    try:
        yield a, b, schema
    finally:
        a.close()
        b.close()
        second.dispose()
        drop()


def test_a_key_held_by_one_replica_is_refused_on_another(replicas: tuple[KeyClaims, KeyClaims, str]) -> None:
    """Replica B cannot claim what replica A holds; once A answers, B can."""
    a, b, _ = replicas
    with a.claim([ANA]):
        with pytest.raises(IdempotencyConflictError, match="in progress"), b.claim([ANA]):
            pass
        with b.claim([BEN]):
            pass
    with b.claim([ANA]):
        pass


def test_a_refused_claim_holds_none_of_its_keys(replicas: tuple[KeyClaims, KeyClaims, str]) -> None:
    """A batch whose second key another replica holds takes none: its first key stays free."""
    a, b, _ = replicas
    with a.claim([BEN]):
        with pytest.raises(IdempotencyConflictError), b.claim([ANA, BEN]):
            pass
        with a.claim([ANA]):
            pass


def test_separate_stores_never_conflict(replicas: tuple[KeyClaims, KeyClaims, str]) -> None:
    """Agencies sharing one database in separate schemas each have their own keys."""
    a, _, _ = replicas
    other, drop = postgres_schema_engine()
    elsewhere = KeyClaims(other)
    try:
        with a.claim([ANA]), elsewhere.claim([ANA]):
            pass
    finally:
        elsewhere.close()
        drop()


def test_a_replica_killed_while_holding_a_key_frees_it(replicas: tuple[KeyClaims, KeyClaims, str],
                                                       tmp_path: Path) -> None:
    """kill -9 of the holder: its connection dies with it, and another replica may claim the key at once."""
    _, b, schema = replicas
    held = tmp_path / "held"
    script = textwrap.dedent(f"""
        import pathlib, time
        from consentledger.store import make_engine
        from consentledger.store.key_claims import KeyClaims
        engine = make_engine({POSTGRES_URL!r}, connect_args={{"options": "-csearch_path={schema}"}})
        with KeyClaims(engine).claim([{ANA!r}]):
            pathlib.Path({str(held)!r}).write_text("held")
            time.sleep(600)
    """)
    replica = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert replica.poll() is None, "the holding replica exited"
            assert time.monotonic() < deadline, "the holding replica never claimed the key"
            time.sleep(0.05)
        with pytest.raises(IdempotencyConflictError), b.claim([ANA]):
            pass
    finally:
        replica.kill()
        replica.wait()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed socket at once; allow it a moment
        try:
            with b.claim([ANA]):
                break
        except IdempotencyConflictError:
            assert time.monotonic() < deadline, "the killed replica's key stayed held"
            time.sleep(0.05)


def _engine_on(schema: str) -> Engine:
    return make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
