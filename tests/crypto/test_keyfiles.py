"""X25519 and KEK files: encrypted round trips, private mode, refusals, wrong passwords and altered files."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consentledger.crypto.keyfiles import (
    KEK_FORMAT,
    kek_id,
    load_kek_file,
    load_x25519_keyfile,
    new_kek_file,
    new_x25519_keyfile,
)
from consentledger.crypto.vault import new_dek
from consentledger.errors import KeystoreError

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def x25519_file(tmp_path: Path) -> tuple[Path, bytes]:
    """An X25519 key file encrypted with PASSWORD, and its raw public key."""
    path = tmp_path / "x25519.pem"
    return path, new_x25519_keyfile(path, PASSWORD)


@pytest.fixture()
def kek() -> bytes:
    """A fresh KEK."""
    return new_dek()


@pytest.fixture()
def kek_file(tmp_path: Path, kek: bytes) -> Path:
    """A KEK file holding `kek`, encrypted with PASSWORD."""
    path = tmp_path / "kek.json"
    new_kek_file(path, PASSWORD, kek=kek)
    return path


def _edit(path: Path, change: Any) -> None:
    """Rewrite the JSON file at `path` after applying `change` to its parsed document."""
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


# --- X25519 key files ---------------------------------------------------------------------------


def test_x25519_keyfile_round_trips(x25519_file: tuple[Path, bytes]) -> None:
    """The key loaded back has the public key new_x25519_keyfile returned."""
    path, public = x25519_file
    assert load_x25519_keyfile(path, PASSWORD).public_key().public_bytes_raw() == public
    assert len(public) == 32


def test_x25519_keyfile_keeps_a_given_key(tmp_path: Path) -> None:
    """Writing an existing private key stores exactly that key."""
    private = X25519PrivateKey.generate()
    path = tmp_path / "given.pem"
    new_x25519_keyfile(path, PASSWORD, private=private)
    assert load_x25519_keyfile(path, PASSWORD).private_bytes_raw() == private.private_bytes_raw()


def test_x25519_keyfile_is_encrypted_pkcs8_pem(x25519_file: tuple[Path, bytes]) -> None:
    """The file is an encrypted PKCS#8 PEM that holds no plaintext key."""
    path, _ = x25519_file
    assert path.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")


def test_x25519_keyfile_is_private_to_its_owner(x25519_file: tuple[Path, bytes]) -> None:
    """The key file is written with mode 0600."""
    path, _ = x25519_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_x25519_wrong_password_raises_keystore_error(x25519_file: tuple[Path, bytes]) -> None:
    """A wrong password gives a one-line KeystoreError saying so."""
    path, _ = x25519_file
    with pytest.raises(KeystoreError, match="wrong password") as caught:
        load_x25519_keyfile(path, "not the password")
    assert "\n" not in str(caught.value)


def test_x25519_keyfile_is_not_overwritten_unless_asked(x25519_file: tuple[Path, bytes]) -> None:
    """Writing over an existing key file is refused; with overwrite it is replaced, still 0600."""
    path, public = x25519_file
    before = path.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        new_x25519_keyfile(path, PASSWORD)
    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    replaced = new_x25519_keyfile(path, PASSWORD, overwrite=True)
    assert replaced != public
    assert load_x25519_keyfile(path, PASSWORD).public_key().public_bytes_raw() == replaced
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_x25519_empty_password_is_refused(tmp_path: Path) -> None:
    """An X25519 key is never written with an empty password."""
    with pytest.raises(KeystoreError, match="empty password"):
        new_x25519_keyfile(tmp_path / "x.pem", "")
    assert not (tmp_path / "x.pem").exists()


def test_missing_x25519_keyfile_raises_keystore_error(tmp_path: Path) -> None:
    """A missing file gives a KeystoreError naming the path."""
    with pytest.raises(KeystoreError, match="cannot read key file .*missing.pem"):
        load_x25519_keyfile(tmp_path / "missing.pem", PASSWORD)


def test_garbage_x25519_keyfile_raises_keystore_error(tmp_path: Path) -> None:
    """A file that is not a PEM key gives a KeystoreError, not a traceback."""
    path = tmp_path / "garbage.pem"
    path.write_text("not a key")
    with pytest.raises(KeystoreError, match="not an encrypted PKCS#8 PEM key file"):
        load_x25519_keyfile(path, PASSWORD)


def test_unencrypted_x25519_keyfile_is_refused(tmp_path: Path) -> None:
    """A PEM key stored without a password is refused rather than silently used."""
    path = tmp_path / "plain.pem"
    path.write_bytes(
        X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(KeystoreError, match="unencrypted key"):
        load_x25519_keyfile(path, PASSWORD)


def test_keyfile_holding_another_key_type_is_refused(tmp_path: Path) -> None:
    """An encrypted Ed25519 key in the X25519 slot is refused, naming what it holds."""
    path = tmp_path / "ed.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    with pytest.raises(KeystoreError, match="not an X25519 key"):
        load_x25519_keyfile(path, PASSWORD)


# --- KEK files -----------------------------------------------------------------------------------


def test_kek_file_round_trips(tmp_path: Path) -> None:
    """A fresh KEK written to a file loads back with the id new_kek_file returned."""
    path = tmp_path / "keys" / "kek.json"
    identifier = new_kek_file(path, PASSWORD)
    loaded_id, loaded = load_kek_file(path, PASSWORD)
    assert loaded_id == identifier == kek_id(loaded)
    assert len(loaded) == 32


def test_kek_file_keeps_a_given_kek(kek_file: Path, kek: bytes) -> None:
    """Writing an existing KEK stores exactly that key under its id."""
    assert load_kek_file(kek_file, PASSWORD) == (kek_id(kek), kek)


def test_kek_id_is_the_first_8_bytes_of_sha256(kek: bytes) -> None:
    """A KEK's id is 16 hex digits of SHA-256(KEK)."""
    assert kek_id(kek) == hashlib.sha256(kek).hexdigest()[:16]


def test_kek_file_has_the_documented_layout(kek_file: Path, kek: bytes) -> None:
    """The file holds format, version, scrypt parameters, nonce, ciphertext and kek_id, and not the KEK."""
    document = json.loads(kek_file.read_text())
    assert set(document) == {"format", "version", "kdf", "kdfparams", "nonce", "ciphertext", "kek_id"}
    assert (document["format"], document["version"], document["kdf"]) == (KEK_FORMAT, 1, "scrypt")
    assert {k: v for k, v in document["kdfparams"].items() if k != "salt"} == {"n": 2**15, "r": 8, "p": 1}
    assert len(bytes.fromhex(document["kdfparams"]["salt"])) == 32
    assert len(bytes.fromhex(document["nonce"])) == 12
    assert len(bytes.fromhex(document["ciphertext"])) == 48
    assert document["kek_id"] == kek_id(kek)
    assert kek.hex() not in kek_file.read_text()


def test_kek_file_is_private_to_its_owner(kek_file: Path) -> None:
    """The KEK file is written with mode 0600."""
    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600


def test_kek_wrong_password_raises_keystore_error(kek_file: Path) -> None:
    """A wrong password gives a one-line KeystoreError saying so."""
    with pytest.raises(KeystoreError, match="wrong password") as caught:
        load_kek_file(kek_file, "not the password")
    assert "\n" not in str(caught.value)


def _set_kek_id(document: dict[str, Any]) -> None:
    document["kek_id"] = kek_id(b"another kek")


def _set_n(document: dict[str, Any]) -> None:
    document["kdfparams"]["n"] = 2**14


def _set_salt(document: dict[str, Any]) -> None:
    document["kdfparams"]["salt"] = "00" * 32


def _set_nonce(document: dict[str, Any]) -> None:
    document["nonce"] = "00" * 12


def _flip_ciphertext(document: dict[str, Any]) -> None:
    document["ciphertext"] = ("ff" if document["ciphertext"][:2] != "ff" else "00") + document["ciphertext"][2:]


def _add_kdf_field(document: dict[str, Any]) -> None:
    document["kdfparams"]["maxmem"] = 1


@pytest.mark.parametrize(
    "change",
    [_set_kek_id, _set_n, _set_salt, _set_nonce, _flip_ciphertext, _add_kdf_field],
    ids=["kek_id", "scrypt n", "salt", "nonce", "ciphertext", "extra kdfparams field"],
)
def test_altered_kek_file_fails_to_decrypt(kek_file: Path, change: Any) -> None:
    """Changing any authenticated field makes the file fail to decrypt, even with the right password."""
    _edit(kek_file, change)
    with pytest.raises(KeystoreError, match="wrong password, or the file was altered"):
        load_kek_file(kek_file, PASSWORD)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format", "other-kek", "not a consentledger-kek file"),
        ("version", 2, "unsupported version 2"),
        ("version", True, "unsupported version True"),
        ("kdf", "pbkdf2", "unsupported kdf 'pbkdf2'"),
        ("nonce", "00", "malformed fields"),
        ("ciphertext", "zz", "malformed fields"),
        ("kdfparams", {"n": 2**30, "r": 8, "p": 1, "salt": "00"}, "unusable scrypt parameters"),
        ("kdfparams", {"n": "32768", "r": 8, "p": 1, "salt": "00"}, "unusable scrypt parameters"),
        ("kdfparams", [], "kdfparams is not an object"),
    ],
)
def test_kek_file_with_bad_header_is_refused(kek_file: Path, field: str, value: Any, message: str) -> None:
    """An unknown format, version or kdf, malformed fields or absurd scrypt costs give a KeystoreError."""
    _edit(kek_file, lambda document: document.__setitem__(field, value))
    with pytest.raises(KeystoreError, match=message):
        load_kek_file(kek_file, PASSWORD)


def test_kek_file_missing_a_field_is_refused(kek_file: Path) -> None:
    """A KEK file without its ciphertext names the missing field."""
    _edit(kek_file, lambda document: document.pop("ciphertext"))
    with pytest.raises(KeystoreError, match="missing ciphertext"):
        load_kek_file(kek_file, PASSWORD)


@pytest.mark.parametrize("content", ["not json", "[1, 2]", "{}"])
def test_malformed_kek_file_raises_keystore_error(tmp_path: Path, content: str) -> None:
    """A file that is not a KEK file gives a KeystoreError, not a traceback."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KeystoreError, match="not a"):
        load_kek_file(path, PASSWORD)


def test_missing_kek_file_raises_keystore_error(tmp_path: Path) -> None:
    """A missing file gives a KeystoreError naming the path."""
    with pytest.raises(KeystoreError, match="cannot read KEK file .*missing.json"):
        load_kek_file(tmp_path / "missing.json", PASSWORD)


def test_kek_file_is_not_overwritten_unless_asked(kek_file: Path, kek: bytes) -> None:
    """Writing over an existing KEK file is refused; with overwrite it is replaced, still 0600."""
    before = kek_file.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        new_kek_file(kek_file, PASSWORD)
    assert kek_file.read_bytes() == before
    assert list(kek_file.parent.iterdir()) == [kek_file]  # no temp file left behind
    replacement = new_dek()
    assert new_kek_file(kek_file, PASSWORD, kek=replacement, overwrite=True) == kek_id(replacement)
    assert load_kek_file(kek_file, PASSWORD) == (kek_id(replacement), replacement)
    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600


def test_kek_empty_password_is_refused(tmp_path: Path) -> None:
    """A KEK is never written with an empty password."""
    with pytest.raises(KeystoreError, match="empty password"):
        new_kek_file(tmp_path / "kek.json", "")


def test_kek_that_is_not_256_bits_is_refused(tmp_path: Path) -> None:
    """Only 32-byte KEKs are stored."""
    with pytest.raises(ValueError, match="KEK is 32 bytes"):
        new_kek_file(tmp_path / "kek.json", PASSWORD, kek=bytes(16))
