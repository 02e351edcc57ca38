"""Per-record sealing: round trips, fresh nonces, one opaque error for every failure, DEK wrapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentledger.crypto.vault import (
    AUTHENTICATION_FAILED,
    DEK_BYTES,
    NONCE_BYTES,
    OVERHEAD,
    TAG_BYTES,
    VERSION,
    new_dek,
    open_sealed,
    record_aad,
    seal,
    unwrap_dek,
    wrap_dek,
)
from consentledger.errors import IntegrityError

RECORD = bytes(range(32))
OTHER_RECORD = bytes(range(1, 33))
CATEGORY = 7
PLAINTEXT = b'{"name":"Ada","blood_type":"O-"}'

# Offsets into a sealed PLAINTEXT: version | nonce (12) | ciphertext (len(PLAINTEXT)) | tag (16).
_CT = 1 + NONCE_BYTES
_TAG = _CT + len(PLAINTEXT)
TAMPER_POSITIONS = {
    "version": 0,
    "nonce first byte": 1,
    "nonce last byte": NONCE_BYTES,
    "ciphertext first byte": _CT,
    "ciphertext middle byte": _CT + len(PLAINTEXT) // 2,
    "ciphertext last byte": _TAG - 1,
    "tag first byte": _TAG,
    "tag last byte": _TAG + TAG_BYTES - 1,
}


@pytest.fixture()
def dek() -> bytes:
    """A fresh data-encryption key."""
    return new_dek()


@pytest.fixture()
def sealed(dek: bytes) -> bytes:
    """PLAINTEXT sealed under `dek` for (RECORD, CATEGORY)."""
    return seal(dek, PLAINTEXT, record_aad(RECORD, CATEGORY))


def _flip(data: bytes, position: int, mask: int = 0x01) -> bytes:
    """Return `data` with the bits of `mask` flipped at `position`."""
    changed = bytearray(data)
    changed[position] ^= mask
    return bytes(changed)


def test_seal_then_open_returns_the_plaintext(dek: bytes, sealed: bytes) -> None:
    """Opening with the same key and AAD gives back the plaintext."""
    assert open_sealed(dek, sealed, record_aad(RECORD, CATEGORY)) == PLAINTEXT


def test_sealed_value_is_version_nonce_ciphertext_tag(sealed: bytes) -> None:
    """A sealed value starts with version 1 and adds exactly 1 + 12 + 16 bytes."""
    assert sealed[0] == VERSION == 1
    assert len(sealed) == len(PLAINTEXT) + OVERHEAD == len(PLAINTEXT) + 1 + NONCE_BYTES + TAG_BYTES


def test_new_dek_is_32_fresh_bytes() -> None:
    """Each DEK is 256 bits and differs from the last."""
    first, second = new_dek(), new_dek()
    assert len(first) == len(second) == DEK_BYTES
    assert first != second


def test_empty_plaintext_round_trips(dek: bytes) -> None:
    """An empty plaintext seals to a tag-only value that still opens."""
    assert open_sealed(dek, seal(dek, b"", b"aad"), b"aad") == b""


@pytest.mark.parametrize("position", TAMPER_POSITIONS.values(), ids=TAMPER_POSITIONS.keys())
def test_tampered_byte_fails_authentication(dek: bytes, sealed: bytes, position: int) -> None:
    """A changed version, nonce, ciphertext or tag byte raises IntegrityError."""
    with pytest.raises(IntegrityError, match=f"^{AUTHENTICATION_FAILED}$"):
        open_sealed(dek, _flip(sealed, position), record_aad(RECORD, CATEGORY))


def test_every_single_bit_flip_fails_authentication(dek: bytes) -> None:
    """Flipping any one bit anywhere in a sealed value raises IntegrityError."""
    aad = record_aad(RECORD, CATEGORY)
    sealed = seal(dek, b"sixteen byte msg", aad)
    for position in range(len(sealed)):
        for bit in range(8):
            with pytest.raises(IntegrityError):
                open_sealed(dek, _flip(sealed, position, 1 << bit), aad)


def test_unknown_version_fails_authentication(dek: bytes, sealed: bytes) -> None:
    """A sealed value claiming another format version is refused."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        open_sealed(dek, bytes([2]) + sealed[1:], record_aad(RECORD, CATEGORY))


@pytest.mark.parametrize("keep", [0, 1, NONCE_BYTES, OVERHEAD - 1, OVERHEAD, -1])
def test_truncated_value_fails_authentication(dek: bytes, sealed: bytes, keep: int) -> None:
    """A sealed value cut short anywhere raises IntegrityError, never IndexError."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        open_sealed(dek, sealed[:keep], record_aad(RECORD, CATEGORY))


def test_appended_byte_fails_authentication(dek: bytes, sealed: bytes) -> None:
    """A sealed value with a byte added raises IntegrityError."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        open_sealed(dek, sealed + b"\x00", record_aad(RECORD, CATEGORY))


def test_wrong_key_fails_authentication(sealed: bytes) -> None:
    """Another 256-bit key cannot open the value."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        open_sealed(new_dek(), sealed, record_aad(RECORD, CATEGORY))


@pytest.mark.parametrize(
    ("record_id", "category"),
    [(OTHER_RECORD, CATEGORY), (RECORD, CATEGORY + 1), (RECORD, CATEGORY + 256)],
    ids=["other record", "other category", "other category high byte"],
)
def test_ciphertext_moved_to_another_record_fails(dek: bytes, sealed: bytes, record_id: bytes, category: int) -> None:
    """A record's ciphertext does not open under another record id or category."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        open_sealed(dek, sealed, record_aad(record_id, category))


def test_every_failure_gives_the_same_message(dek: bytes, sealed: bytes) -> None:
    """Wrong key, wrong AAD, tampering, truncation and bad version are indistinguishable to the caller."""
    aad = record_aad(RECORD, CATEGORY)
    attempts = [
        (new_dek(), sealed, aad),
        (dek, sealed, record_aad(OTHER_RECORD, CATEGORY)),
        (dek, _flip(sealed, _TAG), aad),
        (dek, sealed[:5], aad),
        (dek, bytes([9]) + sealed[1:], aad),
    ]
    messages = set()
    for key, value, associated in attempts:
        with pytest.raises(IntegrityError) as caught:
            open_sealed(key, value, associated)
        messages.add(str(caught.value))
    assert messages == {AUTHENTICATION_FAILED}


def test_two_seals_of_the_same_plaintext_differ(dek: bytes) -> None:
    """Sealing the same plaintext twice uses two nonces and gives two different values."""
    aad = record_aad(RECORD, CATEGORY)
    first, second = seal(dek, PLAINTEXT, aad), seal(dek, PLAINTEXT, aad)
    assert first != second
    assert first[1 : 1 + NONCE_BYTES] != second[1 : 1 + NONCE_BYTES]


def test_nonces_never_repeat_over_10000_seals(dek: bytes) -> None:
    """Ten thousand seals under one key draw ten thousand distinct nonces."""
    nonces = {seal(dek, b"x", b"")[1 : 1 + NONCE_BYTES] for _ in range(10_000)}
    assert len(nonces) == 10_000


@pytest.mark.parametrize("key_bytes", [0, 16, 24, 31, 33])
def test_keys_that_are_not_256_bits_are_refused(key_bytes: int, sealed: bytes) -> None:
    """AES-128/192 keys and odd lengths are a caller's bug: ValueError, on seal and on open."""
    with pytest.raises(ValueError, match="AES-256 key is 32 bytes"):
        seal(bytes(key_bytes), PLAINTEXT, b"")
    with pytest.raises(ValueError, match="AES-256 key is 32 bytes"):
        open_sealed(bytes(key_bytes), sealed, b"")


def test_record_aad_is_prefix_record_id_and_big_endian_category() -> None:
    """The record AAD is the domain tag, the 32-byte id and the category as two big-endian bytes."""
    assert record_aad(RECORD, 0x0102) == b"consentledger/record/v1" + RECORD + b"\x01\x02"


@pytest.mark.parametrize(
    ("record_id", "category"),
    [(RECORD[:31], 1), (RECORD + b"\x00", 1), (RECORD, -1), (RECORD, 0x10000)],
    ids=["short id", "long id", "negative category", "category beyond uint16"],
)
def test_record_aad_refuses_malformed_ids(record_id: bytes, category: int) -> None:
    """A record id that is not 32 bytes or a category outside uint16 raises ValueError."""
    with pytest.raises(ValueError):
        record_aad(record_id, category)


def test_wrapped_dek_unwraps_for_its_record(dek: bytes) -> None:
    """A DEK wrapped under the KEK for a record unwraps to the same DEK."""
    kek = new_dek()
    assert unwrap_dek(kek, wrap_dek(kek, dek, RECORD), RECORD) == dek


def test_wrapped_dek_moved_to_another_record_fails(dek: bytes) -> None:
    """A wrapped DEK swapped onto another record's row does not unwrap."""
    kek = new_dek()
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap_dek(kek, wrap_dek(kek, dek, RECORD), OTHER_RECORD)


def test_wrapped_dek_under_another_kek_fails(dek: bytes) -> None:
    """A DEK wrapped by one agency's KEK does not unwrap under another's."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap_dek(new_dek(), wrap_dek(new_dek(), dek, RECORD), RECORD)


def test_wrapped_dek_is_not_a_record_ciphertext(dek: bytes) -> None:
    """The DEK AAD's domain tag keeps a wrapped DEK from opening as record data and vice versa."""
    kek = new_dek()
    with pytest.raises(IntegrityError):
        open_sealed(kek, wrap_dek(kek, dek, RECORD), record_aad(RECORD, CATEGORY))
    with pytest.raises(IntegrityError):
        unwrap_dek(kek, seal(kek, dek, record_aad(RECORD, CATEGORY)), RECORD)


def test_value_sealed_under_the_kek_that_is_not_a_dek_is_refused() -> None:
    """Unwrapping something of the wrong length under the DEK AAD raises IntegrityError, not a short key."""
    kek = new_dek()
    short = seal(kek, b"not a dek", b"consentledger/dek/v1" + RECORD)
    with pytest.raises(IntegrityError):
        unwrap_dek(kek, short, RECORD)


def test_wrap_dek_refuses_a_dek_that_is_not_256_bits() -> None:
    """Only 32-byte DEKs are wrapped."""
    with pytest.raises(ValueError, match="DEK is 32 bytes"):
        wrap_dek(new_dek(), bytes(16), RECORD)


_KEY = new_dek()


@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=256))
def test_seal_open_round_trips_arbitrary_bytes(plaintext: bytes, aad: bytes) -> None:
    """Any plaintext with any AAD opens to itself."""
    assert open_sealed(_KEY, seal(_KEY, plaintext, aad), aad) == plaintext


@given(plaintext=st.binary(max_size=256), aad=st.binary(max_size=64), other=st.binary(max_size=64))
def test_any_other_aad_fails(plaintext: bytes, aad: bytes, other: bytes) -> None:
    """Opening with any AAD but the sealing one raises IntegrityError."""
    if other == aad:
        other += b"\x00"
    with pytest.raises(IntegrityError):
        open_sealed(_KEY, seal(_KEY, plaintext, aad), other)
