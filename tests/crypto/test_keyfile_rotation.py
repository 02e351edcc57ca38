"""Key files during a rotation: the successor beside the current file, promotion in one step, file locks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from consentledger.crypto.files import try_lock_file
from consentledger.crypto.keyfiles import (
    load_kek_file,
    load_x25519_keys,
    new_kek_file,
    new_next_kek_file,
    new_next_x25519_keyfile,
    new_x25519_keyfile,
    next_keyfile,
    promote_keyfile,
)
from consentledger.errors import KeystoreError

PASSWORD = "correct horse battery staple"


def test_next_keyfile_sits_beside_the_current_one() -> None:
    """`kek.json` → `kek.next.json`, `x25519.pem` → `x25519.next.pem`, in the same directory."""
    assert next_keyfile(Path("/a/kek.json")) == Path("/a/kek.next.json")
    assert next_keyfile(Path("/a/x25519.pem")) == Path("/a/x25519.next.pem")


def test_next_kek_file_is_private_loadable_and_never_overwritten(tmp_path: Path) -> None:
    """The next KEK file holds the returned KEK, is 0600, and a second one is refused (a resume must reuse it)."""
    kek_file = tmp_path / "kek.json"
    new_kek_file(kek_file, PASSWORD)

    identifier, kek = new_next_kek_file(kek_file, PASSWORD)

    assert load_kek_file(next_keyfile(kek_file), PASSWORD) == (identifier, kek)
    assert stat.S_IMODE(next_keyfile(kek_file).stat().st_mode) == 0o600
    with pytest.raises(KeystoreError, match="already exists"):
        new_next_kek_file(kek_file, PASSWORD)


def test_promote_replaces_the_current_file_and_removes_the_next(tmp_path: Path) -> None:
    """After promotion the current path holds the successor's key; the old key's file and the next file are gone."""
    kek_file = tmp_path / "kek.json"
    old_id = new_kek_file(kek_file, PASSWORD)
    new_id, new = new_next_kek_file(kek_file, PASSWORD)

    promote_keyfile(kek_file)

    assert load_kek_file(kek_file, PASSWORD) == (new_id, new) and new_id != old_id
    assert not next_keyfile(kek_file).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek.json"]


def test_promote_without_a_next_file_raises_keystore_error(tmp_path: Path) -> None:
    """No rotation under way: nothing to promote, the current file stays."""
    kek_file = tmp_path / "kek.json"
    identifier = new_kek_file(kek_file, PASSWORD)
    with pytest.raises(KeystoreError, match="cannot replace"):
        promote_keyfile(kek_file)
    assert load_kek_file(kek_file, PASSWORD)[0] == identifier


def test_x25519_keys_hold_the_next_key_only_during_a_rotation(tmp_path: Path) -> None:
    """Before a rotation (current, None); with a next key written (current, next); once promoted (next, None)."""
    path = tmp_path / "x25519.pem"
    current_public = new_x25519_keyfile(path, PASSWORD)

    current, successor = load_x25519_keys(path, PASSWORD)
    assert current.public_key().public_bytes_raw() == current_public and successor is None

    next_public = new_next_x25519_keyfile(path, PASSWORD)
    current, successor = load_x25519_keys(path, PASSWORD)
    assert current.public_key().public_bytes_raw() == current_public
    assert successor is not None and successor.public_key().public_bytes_raw() == next_public

    promote_keyfile(path)
    current, successor = load_x25519_keys(path, PASSWORD)
    assert current.public_key().public_bytes_raw() == next_public and successor is None


def test_an_exclusive_lock_excludes_shared_ones_and_the_reverse(tmp_path: Path) -> None:
    """Gateways share a lock on the KEK file; a rotation's exclusive lock is refused while one is held, and back."""
    path = tmp_path / "kek.json"
    new_kek_file(path, PASSWORD)
    gateway_a = try_lock_file(path, exclusive=False)
    gateway_b = try_lock_file(path, exclusive=False)
    assert gateway_a is not None and gateway_b is not None
    assert try_lock_file(path, exclusive=True) is None

    gateway_a.release()
    gateway_b.release()
    gateway_b.release()  # idempotent
    rotation = try_lock_file(path, exclusive=True)
    assert rotation is not None
    assert try_lock_file(path, exclusive=False) is None
    rotation.release()


def test_locking_a_missing_file_raises_keystore_error(tmp_path: Path) -> None:
    """A KEK file that is not there cannot be locked: one readable KeystoreError."""
    with pytest.raises(KeystoreError, match="cannot open"):
        try_lock_file(tmp_path / "kek.json", exclusive=True)
