"""Per-record encryption: AES-256-GCM under a record's DEK, the DEK wrapped by the agency KEK.

A sealed value is `version (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`. Every seal
draws a fresh random nonce, so callers never handle one. Every way opening can fail (wrong key,
wrong AAD, a changed or missing byte, an unknown version) raises the same `IntegrityError`, so a
caller cannot learn, and an attacker cannot probe, which check failed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consentledger.errors import IntegrityError

DEK_BYTES = 32
"""The length of a data-encryption key (and of a KEK): AES-256."""

VERSION = 1
"""The first byte of every sealed value this module writes."""

NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
"""How many bytes `seal` adds to a plaintext."""

RECORD_ID_BYTES = 32

AUTHENTICATION_FAILED = "ciphertext failed authentication"
"""The one message of every `IntegrityError` raised while opening a sealed value."""

_RECORD_AAD_PREFIX = b"consentledger/record/v1"
_DEK_AAD_PREFIX = b"consentledger/dek/v1"


def new_dek() -> bytes:
    """Return a fresh random 256-bit data-encryption key."""
    return AESGCM.generate_key(bit_length=8 * DEK_BYTES)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Return `plaintext` encrypted and authenticated under `key`, bound to `aad`.

    A fresh random 96-bit nonce is drawn for every call. Raises `ValueError` if `key` is not
    32 bytes.
    """
    nonce = os.urandom(NONCE_BYTES)
    return bytes([VERSION]) + nonce + _aead(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Return the plaintext of a value made by `seal(key, plaintext, aad)`.

    Raises `IntegrityError` if anything differs from what was sealed. Raises `ValueError` if `key`
    is not 32 bytes (a caller's bug, not a property of the data).
    """
    aead = _aead(key)
    if len(sealed) < OVERHEAD or sealed[0] != VERSION:
        raise IntegrityError(AUTHENTICATION_FAILED)
    try:
        return aead.decrypt(sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise IntegrityError(AUTHENTICATION_FAILED) from None


def record_aad(record_id: bytes, category: int) -> bytes:
    """Return the AAD that binds a record's ciphertext to its id and category.

    The layout is fixed-width, `b"consentledger/record/v1" ‖ record_id (32) ‖ category (2, big-endian)`,
    so no two (id, category) pairs share an AAD.
    """
    _check_record_id(record_id)
    if not 0 <= category <= 0xFFFF:
        raise ValueError(f"a category id is a uint16, got {category}")
    return _RECORD_AAD_PREFIX + record_id + category.to_bytes(2, "big")


def wrap_dek(kek: bytes, dek: bytes, record_id: bytes) -> bytes:
    """Return `dek` sealed under the agency `kek`, usable only for the record `record_id`."""
    if len(dek) != DEK_BYTES:
        raise ValueError(f"a DEK is {DEK_BYTES} bytes, got {len(dek)}")
    return seal(kek, dek, _dek_aad(record_id))


def unwrap_dek(kek: bytes, wrapped: bytes, record_id: bytes) -> bytes:
    """Return the DEK that `wrap_dek(kek, dek, record_id)` wrapped.

    Raises `IntegrityError` for another KEK, another record id, or any changed byte.
    """
    dek = open_sealed(kek, wrapped, _dek_aad(record_id))
    if len(dek) != DEK_BYTES:
        raise IntegrityError(AUTHENTICATION_FAILED)
    return dek


def _dek_aad(record_id: bytes) -> bytes:
    """Return the AAD binding a wrapped DEK to its record."""
    _check_record_id(record_id)
    return _DEK_AAD_PREFIX + record_id


def _check_record_id(record_id: bytes) -> None:
    """Raise `ValueError` unless `record_id` is 32 bytes."""
    if len(record_id) != RECORD_ID_BYTES:
        raise ValueError(f"a record id is {RECORD_ID_BYTES} bytes, got {len(record_id)}")


def _aead(key: bytes) -> AESGCM:
    """Return an AES-256-GCM instance for `key`; refuse the 128- and 192-bit keys AESGCM also takes."""
    if len(key) != DEK_BYTES:
        raise ValueError(f"an AES-256 key is {DEK_BYTES} bytes, got {len(key)}")
    return AESGCM(key)
