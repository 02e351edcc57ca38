"""`consentledger keys rotate-kek`: killed with SIGKILL mid-way and run again, every record ends under the new KEK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from consentledger.crypto.keyfiles import load_kek_file, next_keyfile
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal, unwrap_dek, wrap_dek
from consentledger.errors import IntegrityError
from consentledger.gateway.admin.setup import init_agency
from consentledger.settings import Settings, load_settings
from consentledger.store import create_schema, make_engine
from consentledger.store.tables import records

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
PASSWORD = "correct horse"
CATEGORY = 2
RECORDS, SHREDDED = 6000, 3
BATCH = 3
"""Small batches make the run last long enough (a second or so) to be killed part-way through."""


def _cli(*args: str, password: str = PASSWORD) -> subprocess.Popen[str]:
    env = {**os.environ, "CONSENTLEDGER_KEY_PASSWORD": password}
    return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(*args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    process = _cli(*args, password=password)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _fill(engine: Engine, kek: bytes, kek_id: str) -> None:
    """Insert RECORDS records sealed as the gateway seals them (payload {"n": n}), and SHREDDED shredded ones."""
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for n in range(RECORDS + SHREDDED):
        rid, dek = os.urandom(32), new_dek()
        shredded = n >= RECORDS
        rows.append({
            "record_id": "0x" + rid.hex(), "custodian": "0x" + "11" * 20, "subject": "0x" + "22" * 20,
            "category": CATEGORY, "ciphertext": seal(dek, json.dumps({"n": n}).encode(), record_aad(rid, CATEGORY)),
            "wrapped_dek": b"" if shredded else wrap_dek(kek, dek, rid), "kek_id": kek_id, "salt": b"s" * 16,
            "commitment": b"c" * 32, "derived_from": [], "state": "shredded" if shredded else "registered",
            "idempotency_key": None, "request_hash": f"h-{n}", "created_at": now, "updated_at": now,
        })
    with engine.begin() as conn:
        conn.execute(records.insert(), rows)


def _moved(engine: Engine, old_id: str) -> int:
    """Return how many records hold a DEK wrapped under another KEK than `old_id`."""
    query = select(func.count()).select_from(records).where(
        records.c.kek_id != old_id, func.length(records.c.wrapped_dek) > 0
    )
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


@pytest.fixture
def agency(tmp_path: Path) -> Settings:
    """An agency made by `agency init` (no chain needed for a KEK rotation) whose store holds the records above."""
    created = init_agency(tmp_path / "health", "health", PASSWORD, rpc_url="http://127.0.0.1:9",
                          manifest=tmp_path / "deployment.json", port=9)
    settings = load_settings(created.config)
    engine = make_engine(settings.store_url)
    create_schema(engine)
    _fill(engine, *reversed(load_kek_file(settings.kek_keyfile, PASSWORD)))
    engine.dispose()
    return settings


def test_rotate_kek_killed_mid_way_then_run_again_leaves_every_record_under_the_new_kek(agency: Settings) -> None:
    """SIGKILL part-way through, then the same command: it resumes, every DEK opens under the new KEK and the payload
    decrypts, none is left under the old KEK, whose file is gone and which opens no wrapped DEK; shredded rows stay."""
    config, kek_file = str(agency.kek_keyfile.parent / "agency.toml"), agency.kek_keyfile
    old_id, old = load_kek_file(kek_file, PASSWORD)
    engine = make_engine(agency.store_url)

    first = _cli("keys", "rotate-kek", "--config", config, "--batch-size", str(BATCH))
    deadline = time.monotonic() + 60
    while (moved := _moved(engine, old_id)) < RECORDS // 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    crashed_at = _moved(engine, old_id)
    assert 0 < moved <= crashed_at < RECORDS, "the rotation was not killed part-way through"
    assert next_keyfile(kek_file).exists() and load_kek_file(kek_file, PASSWORD)[0] == old_id

    second = _run("keys", "rotate-kek", "--config", config, "--batch-size", "500")

    assert second.returncode == 0, second.stderr
    new_id, new = load_kek_file(kek_file, PASSWORD)
    assert new_id != old_id and not next_keyfile(kek_file).exists()
    assert f"resuming the rotation of KEK {old_id} → {new_id}: {crashed_at} of {RECORDS} records" in second.stdout
    assert second.stdout.strip().splitlines()[-1] == (
        f"rotated KEK {old_id} → {new_id}: {RECORDS} records re-wrapped ({crashed_at} by an earlier, interrupted "
        f"run), {SHREDDED} shredded skipped; the old KEK's file is destroyed"
    )
    key_files = [json.loads(p.read_text()) for p in kek_file.parent.glob("*.json") if "kek_id" in p.read_text()]
    held = [doc["kek_id"] for doc in key_files]
    assert new_id in held and old_id not in held  # (pseudonym.json, the other secret in this format, stays)

    with engine.connect() as conn:
        rows = conn.execute(select(records.c.record_id, records.c.kek_id, records.c.wrapped_dek,
                                   records.c.ciphertext, records.c.state)).all()
    engine.dispose()
    live = [row for row in rows if row.state != "shredded"]
    assert len(live) == RECORDS and {row.kek_id for row in live} == {new_id}
    assert all(row.kek_id == old_id and row.wrapped_dek == b"" for row in rows if row.state == "shredded")
    numbers = set()
    for row in live:
        rid = bytes.fromhex(row.record_id[2:])
        dek = unwrap_dek(new, row.wrapped_dek, rid)
        numbers.add(json.loads(open_sealed(dek, row.ciphertext, record_aad(rid, CATEGORY)))["n"])
        with pytest.raises(IntegrityError):
            unwrap_dek(old, row.wrapped_dek, rid)
    assert numbers == set(range(RECORDS))


def test_rotate_kek_with_a_wrong_password_exits_7_with_one_line(tmp_path: Path) -> None:
    """A wrong password: exit code 7 and one readable line on stderr; nothing is written."""
    created = init_agency(tmp_path / "a", "a", PASSWORD, rpc_url="http://127.0.0.1:9",
                          manifest=tmp_path / "deployment.json", port=9)

    result = _run("keys", "rotate-kek", "--config", str(created.config), password="not it")

    assert result.returncode == 7
    assert result.stderr.strip().count("\n") == 0 and "wrong password" in result.stderr
    assert not next_keyfile(created.config.parent / "kek.json").exists()


def test_rotate_kek_without_a_config_exits_2_naming_it(tmp_path: Path) -> None:
    """No agency.toml: exit code 2 and one line naming the file and how to create one."""
    result = _run("keys", "rotate-kek", "--config", str(tmp_path / "agency.toml"))

    assert result.returncode == 2
    assert result.stderr.strip() == f"error: gateway config {tmp_path / 'agency.toml'} not found " \
                                    "(create one with `consentledger agency init`)"
