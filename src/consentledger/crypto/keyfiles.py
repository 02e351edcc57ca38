"""An agency's X25519 key and KEK in password-encrypted files (mode 0600, written atomically).

- X25519 key: PKCS#8 PEM with `BestAvailableEncryption`, readable by `openssl pkey`.
- KEK (32 symmetric bytes, which PKCS#8 cannot hold): a small JSON file, the KEK sealed with
  AES-256-GCM under a scrypt-derived key, every header field bound in as AAD::

    {"format": "consentledger-kek", "version": 1, "kdf": "scrypt",
     "kdfparams": {"n": 32768, "r": 8, "p": 1, "salt": hex}, "nonce": hex, "ciphertext": hex,
     "kek_id": hex}

  `kek_id` is the first 8 bytes of SHA-256(KEK): stores record it beside each wrapped DEK so a
  rotation knows which KEK to ask for.

A rotation writes the successor of a key file beside it under a "next" name (`kek.json` →
`kek.next.json`, `x25519.pem` → `x25519.next.pem`) before anything depends on it, and later moves it
over the current file in one atomic step (`promote_keyfile`), which destroys the old key's file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from consentledger.crypto.commitment import canonical_json
from consentledger.crypto.files import read_key_file, replace_file, sync_directory, write_private_file
from consentledger.crypto.vault import DEK_BYTES, new_dek
from consentledger.errors import KeystoreError

KEK_FORMAT = "consentledger-kek"
KEK_VERSION = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
"""The scrypt cost new KEK files use (32 MiB, as eth-account keystores' "light" profile doubled)."""

_SALT_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_SCRYPT_MEMORY = 1 << 30  # refuse files whose kdfparams would make loading allocate more than 1 GiB


def new_x25519_keyfile(
    path: Path,
    password: str,
    *,
    private: X25519PrivateKey | None = None,
    overwrite: bool = False,
) -> bytes:
    """Return the raw public key of `private` (a fresh key if omitted), written encrypted to `path`.

    An existing file is kept unless `overwrite` is true.
    """
    _require_password(password, "key file")
    if private is None:
        private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode("utf-8")),
    )
    write_private_file(path, pem, overwrite=overwrite, what="key file")
    return private.public_key().public_bytes_raw()


def load_x25519_keyfile(path: Path, password: str) -> X25519PrivateKey:
    """Return the X25519 private key decrypted from `path`.

    Raises `KeystoreError` (one readable line) for a missing file, a wrong password, a file that
    is not an encrypted PKCS#8 key, or one holding another kind of key.
    """
    data = read_key_file(path, "key file")
    try:
        key = serialization.load_pem_private_key(data, password.encode("utf-8"))
    except ValueError:
        if data.lstrip().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
            raise KeystoreError(f"cannot decrypt key file {path}: wrong password, or the file is damaged") from None
        raise KeystoreError(f"{path} is not an encrypted PKCS#8 PEM key file") from None
    except TypeError:  # the PEM is not encrypted
        raise KeystoreError(f"{path} holds an unencrypted key; refusing to use it") from None
    except UnsupportedAlgorithm:
        raise KeystoreError(f"{path} holds a key of an unsupported kind") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeystoreError(f"{path} holds a {type(key).__name__}, not an X25519 key")
    return key


def new_kek_file(path: Path, password: str, *, kek: bytes | None = None, overwrite: bool = False) -> str:
    """Return the id of `kek` (a fresh 256-bit KEK if omitted), written encrypted to `path`.

    An existing file is kept unless `overwrite` is true.
    """
    _require_password(password, "KEK file")
    if kek is None:
        kek = new_dek()
    if len(kek) != DEK_BYTES:
        raise ValueError(f"a KEK is {DEK_BYTES} bytes, got {len(kek)}")
    salt, nonce, identifier = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES), kek_id(kek)
    header: dict[str, Any] = {
        "format": KEK_FORMAT,
        "version": KEK_VERSION,
        "kdf": "scrypt",
        "kdfparams": {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex()},
        "kek_id": identifier,
    }
    wrapping_key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(wrapping_key).encrypt(nonce, kek, canonical_json(header))
    document = {**header, "nonce": nonce.hex(), "ciphertext": ciphertext.hex()}
    text = json.dumps(document, indent=2) + "\n"
    write_private_file(path, text.encode("utf-8"), overwrite=overwrite, what="KEK file")
    return identifier


def load_kek_file(path: Path, password: str) -> tuple[str, bytes]:
    """Return `(kek_id, kek)` decrypted from the KEK file at `path`.

    Raises `KeystoreError` (one readable line) for a missing or malformed file, a wrong password,
    or any altered field.
    """
    document = _read_kek_document(path)
    header = {key: document[key] for key in ("format", "version", "kdf", "kdfparams", "kek_id")}
    params = document["kdfparams"]
    try:
        n, r, p = params["n"], params["r"], params["p"]
        salt = bytes.fromhex(params["salt"])
        nonce, ciphertext = bytes.fromhex(document["nonce"]), bytes.fromhex(document["ciphertext"])
    except (KeyError, TypeError, ValueError):
        raise KeystoreError(f"{path} is not a valid KEK file (malformed fields)") from None
    if not all(type(value) is int and value > 0 for value in (n, r, p)) or 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise KeystoreError(f"{path} is not a valid KEK file (unusable scrypt parameters)")
    if len(nonce) != _NONCE_BYTES or len(ciphertext) != DEK_BYTES + _TAG_BYTES:
        raise KeystoreError(f"{path} is not a valid KEK file (malformed fields)")
    try:
        wrapping_key = _scrypt(password, salt, n, r, p)
        kek = AESGCM(wrapping_key).decrypt(nonce, ciphertext, canonical_json(header))
    except (InvalidTag, ValueError):
        raise KeystoreError(f"cannot decrypt KEK file {path}: wrong password, or the file was altered") from None
    # The AAD already binds kek_id; this catches a file written with a wrong id in the first place.
    if kek_id(kek) != header["kek_id"]:
        raise KeystoreError(f"KEK file {path} names kek_id {header['kek_id']} but holds another key")
    return header["kek_id"], kek


def next_keyfile(path: Path) -> Path:
    """Return where a rotation keeps the successor of key file `path`: `kek.json` → `kek.next.json`."""
    return path.with_name(f"{path.stem}.next{path.suffix}")


def new_next_kek_file(path: Path, password: str) -> tuple[str, bytes]:
    """Return `(kek_id, kek)` of a fresh KEK written durably to `next_keyfile(path)` (never overwritten)."""
    kek = new_dek()
    identifier = new_kek_file(next_keyfile(path), password, kek=kek)
    sync_directory(path.parent)
    return identifier, kek


def new_next_x25519_keyfile(path: Path, password: str) -> bytes:
    """Return the public key of a fresh X25519 key written durably to `next_keyfile(path)` (never overwritten)."""
    public = new_x25519_keyfile(next_keyfile(path), password)
    sync_directory(path.parent)
    return public


def load_x25519_keys(path: Path, password: str) -> tuple[X25519PrivateKey, X25519PrivateKey | None]:
    """Return the X25519 key in `path` and, while a rotation is under way, the one in its next file (else None).

    A next file that disappears while being read (promoted meanwhile) counts as absent.
    """
    current = load_x25519_keyfile(path, password)
    successor = next_keyfile(path)
    if not successor.exists():
        return current, None
    try:
        return current, load_x25519_keyfile(successor, password)
    except KeystoreError:
        if successor.exists():
            raise
        return load_x25519_keyfile(path, password), None


def promote_keyfile(path: Path, what: str = "key file") -> None:
    """Make the next file of `path` current in one atomic, durable step; the old key's file is gone after."""
    replace_file(next_keyfile(path), path, what=what)


def kek_id(kek: bytes) -> str:
    """Return the id of a KEK: the first 8 bytes of its SHA-256, as 16 lowercase hex digits."""
    return hashlib.sha256(kek).digest()[:8].hex()


def _read_kek_document(path: Path) -> dict[str, Any]:
    """Return the parsed KEK file at `path`, checked for format, version and KDF."""
    try:
        document = json.loads(read_key_file(path, "KEK file"))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise KeystoreError(f"{path} is not a KEK file (not JSON)") from None
    if not isinstance(document, dict) or document.get("format") != KEK_FORMAT:
        raise KeystoreError(f"{path} is not a {KEK_FORMAT} file")
    version, kdf = document.get("version"), document.get("kdf")
    if type(version) is not int or version != KEK_VERSION:
        raise KeystoreError(f"{path} has unsupported version {version!r} (expected {KEK_VERSION})")
    if kdf != "scrypt":
        raise KeystoreError(f"{path} uses unsupported kdf {kdf!r} (expected scrypt)")
    if missing := sorted({"kdfparams", "kek_id", "nonce", "ciphertext"} - document.keys()):
        raise KeystoreError(f"{path} is not a valid KEK file (missing {', '.join(missing)})")
    if not isinstance(document["kdfparams"], dict):
        raise KeystoreError(f"{path} is not a valid KEK file (kdfparams is not an object)")
    return document


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """Return the 32-byte key scrypt derives from `password`."""
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def _require_password(password: str, what: str) -> None:
    """Raise `KeystoreError` for an empty password."""
    if not password:
        raise KeystoreError(f"refusing to encrypt a {what} with an empty password")
