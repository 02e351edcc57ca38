"""KEK rotation of an agency (no chain needed): files and store move together, resumable after a crash anywhere."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from consentledger.crypto.files import try_lock_file
from consentledger.crypto.keyfiles import (
    load_kek_file,
    new_kek_file,
    new_next_kek_file,
    new_x25519_keyfile,
    next_keyfile,
)
from consentledger.crypto.vault import new_dek, open_sealed, record_aad, seal, unwrap_dek, wrap_dek
from consentledger.errors import ConfigurationError, IntegrityError, KeystoreError
from consentledger.gateway.admin.kek_rotation import KekProgress, rotate_kek
from consentledger.gateway.keyring import open_agency_keys
from consentledger.settings import Settings
from consentledger.store import Store, StoredRecord, create_schema, make_engine
from consentledger.store.rotation import Kek, census, rewrap_all, rewrap_batch
from consentledger.types import Address

PASSWORD = "local development only"
CUSTODIAN = Address("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc")
CATEGORY = 1
RECORDS = 6


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An agency's settings with KEK, pseudonym and X25519 key files and a SQLite store (no chain, no signer)."""
    new_kek_file(tmp_path / "kek.json", PASSWORD)
    new_kek_file(tmp_path / "pseudonym.json", PASSWORD)
    new_x25519_keyfile(tmp_path / "x25519.pem", PASSWORD)
    return Settings(
        name="health", rpc_url="http://127.0.0.1:9", manifest=tmp_path / "deployment.json",
        signer_keystore=tmp_path / "signer.json", x25519_keyfile=tmp_path / "x25519.pem",
        kek_keyfile=tmp_path / "kek.json", pseudonym_keyfile=tmp_path / "pseudonym.json",
        store_url=f"sqlite:///{tmp_path / 'agency.db'}",
    )


@pytest.fixture
def store(settings: Settings) -> Store:
    """The agency's store, holding RECORDS records sealed as the gateway seals them, under the agency's KEK."""
    store = Store(make_engine(settings.store_url))
    create_schema(store.engine)
    kek = _kek(settings.kek_keyfile)
    for n in range(RECORDS):
        rid, dek = os.urandom(32), new_dek()
        store.add_record(
            StoredRecord(
                record_id="0x" + rid.hex(), custodian=CUSTODIAN, subject=CUSTODIAN, category=CATEGORY,
                ciphertext=seal(dek, json.dumps({"n": n}).encode(), record_aad(rid, CATEGORY)),
                wrapped_dek=wrap_dek(kek.key, dek, rid), kek_id=kek.id, salt=b"s" * 16, commitment=b"c" * 32,
                request_hash=f"h-{n}",
            ),
            outbox_kind="register_record", outbox_payload={}, signer=CUSTODIAN,
        )
    return store


def _kek(path: Path) -> Kek:
    return Kek(*load_kek_file(path, PASSWORD))


def _payloads(store: Store, kek: Kek) -> list[int]:
    """Return every record's payload number, opened with `kek` (IntegrityError if one does not open)."""
    numbers = []
    for record in store.records_by_subject(CUSTODIAN):
        rid = bytes.fromhex(record.record_id[2:])
        dek = unwrap_dek(kek.key, record.wrapped_dek, rid)
        numbers.append(json.loads(open_sealed(dek, record.ciphertext, record_aad(rid, CATEGORY)))["n"])
    return sorted(numbers)


def test_rotation_moves_every_record_and_destroys_the_old_kek_file(settings: Settings, store: Store) -> None:
    """Every record opens under the new KEK and not the old; kek.json holds the new KEK; no next file is left."""
    old = _kek(settings.kek_keyfile)
    heard: list[KekProgress] = []

    rotated = rotate_kek(settings, PASSWORD, batch=4, progress=heard.append)

    new = _kek(settings.kek_keyfile)
    assert (rotated.old_id, rotated.new_id, rotated.moved, rotated.earlier) == (old.id, new.id, RECORDS, 0)
    assert not next_keyfile(settings.kek_keyfile).exists()
    assert census(store.engine).wrapped == {new.id: RECORDS}
    assert _payloads(store, new) == list(range(RECORDS))
    for record in store.records_by_subject(CUSTODIAN):
        with pytest.raises(IntegrityError):
            unwrap_dek(old.key, record.wrapped_dek, bytes.fromhex(record.record_id[2:]))
    assert [(p.done, p.total, p.resumed) for p in heard] == [(0, RECORDS, False), (4, RECORDS, False),
                                                              (RECORDS, RECORDS, False)]
    assert rotated.summary().startswith(f"rotated KEK {old.id} → {new.id}: {RECORDS} records re-wrapped")


def _next_file_written(settings: Settings, store: Store) -> None:
    new_next_kek_file(settings.kek_keyfile, PASSWORD)


def _one_batch_done(settings: Settings, store: Store) -> None:
    old, new = _kek(settings.kek_keyfile), Kek(*new_next_kek_file(settings.kek_keyfile, PASSWORD))
    rewrap_batch(store.engine, old, new, limit=2)


def _every_batch_done(settings: Settings, store: Store) -> None:
    old, new = _kek(settings.kek_keyfile), Kek(*new_next_kek_file(settings.kek_keyfile, PASSWORD))
    rewrap_all(store.engine, old, new)


@pytest.mark.parametrize(
    ("crash", "earlier"),
    [(_next_file_written, 0), (_one_batch_done, 2), (_every_batch_done, RECORDS)],
    ids=["after-next-kek-written", "after-one-batch", "before-the-kek-file-is-replaced"],
)
def test_a_rotation_interrupted_anywhere_is_finished_by_running_it_again(
    settings: Settings, store: Store, crash: Callable[[Settings, Store], None], earlier: int
) -> None:
    """A crash leaves kek.next.json: the gateway refuses to start, and the next run finishes with that same KEK."""
    old = _kek(settings.kek_keyfile)
    crash(settings, store)
    pending = _kek(next_keyfile(settings.kek_keyfile))
    with pytest.raises(ConfigurationError, match="half done .*kek.next.json.*rotate-kek"):
        open_agency_keys(settings, PASSWORD)

    rotated = rotate_kek(settings, PASSWORD, batch=2)

    assert (rotated.old_id, rotated.new_id, rotated.earlier, rotated.moved) == (old.id, pending.id, earlier,
                                                                                 RECORDS - earlier)
    assert _kek(settings.kek_keyfile) == pending and not next_keyfile(settings.kek_keyfile).exists()
    assert _payloads(store, pending) == list(range(RECORDS))
    keys = open_agency_keys(settings, PASSWORD)
    assert keys.kek_id == pending.id
    keys.lock.release()


def test_rotation_refuses_while_a_gateway_holds_the_kek_file(settings: Settings, store: Store) -> None:
    """A running gateway's shared lock makes the rotation refuse, naming the fix, before it writes anything."""
    keys = open_agency_keys(settings, PASSWORD)
    try:
        with pytest.raises(ConfigurationError, match="in use by a running gateway.*stop every gateway"):
            rotate_kek(settings, PASSWORD)
    finally:
        keys.lock.release()
    assert not next_keyfile(settings.kek_keyfile).exists()
    assert census(store.engine).wrapped == {keys.kek_id: RECORDS}


def test_gateway_refuses_to_start_while_a_rotation_runs(settings: Settings) -> None:
    """While a rotation holds the KEK file exclusively, opening the gateway's keys fails with one clear line."""
    rotation = try_lock_file(settings.kek_keyfile, exclusive=True)
    assert rotation is not None
    try:
        with pytest.raises(ConfigurationError, match="a KEK rotation is running"):
            open_agency_keys(settings, PASSWORD)
    finally:
        rotation.release()


def test_wrong_password_changes_nothing(settings: Settings, store: Store) -> None:
    """A wrong password raises KeystoreError; no next KEK is written and no record moves."""
    old = _kek(settings.kek_keyfile)
    with pytest.raises(KeystoreError, match="wrong password"):
        rotate_kek(settings, "not the password")
    assert not next_keyfile(settings.kek_keyfile).exists()
    assert census(store.engine).wrapped == {old.id: RECORDS}


def test_records_under_a_kek_the_agency_does_not_hold_stop_the_rotation_before_it_starts(
    settings: Settings, store: Store
) -> None:
    """Another KEK file than the store's: refused with the counts per KEK id, and nothing written."""
    store_kek = _kek(settings.kek_keyfile)
    new_kek_file(settings.kek_keyfile, PASSWORD, overwrite=True)

    with pytest.raises(ConfigurationError, match=f"{RECORDS} under {store_kek.id}.*agency's KEK file"):
        rotate_kek(settings, PASSWORD)

    assert not next_keyfile(settings.kek_keyfile).exists()
