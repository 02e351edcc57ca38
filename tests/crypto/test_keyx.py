"""Re-wrapping a DEK for a requester: only that requester, only that access, a fresh ephemeral key each time."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consentledger.crypto.keyx import (
    WrappedKey,
    access_context,
    new_x25519,
    public_from_private,
    unwrap,
    unwrap_any,
    wrap_for,
)
from consentledger.crypto.vault import AUTHENTICATION_FAILED, new_dek
from consentledger.errors import IntegrityError

RECORD = bytes(range(32))
REQUESTER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER_REQUESTER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CONTEXT = access_context(RECORD, 1, REQUESTER)


@pytest.fixture()
def recipient() -> tuple[bytes, bytes]:
    """The requester agency's raw X25519 (private, public) pair."""
    return new_x25519()


@pytest.fixture()
def dek() -> bytes:
    """The record's data-encryption key, the secret being re-wrapped."""
    return new_dek()


@pytest.fixture()
def wrapped(recipient: tuple[bytes, bytes], dek: bytes) -> WrappedKey:
    """`dek` wrapped for `recipient` and the first access by REQUESTER."""
    return wrap_for(recipient[1], dek, CONTEXT)


def test_recipient_unwraps_the_secret(recipient: tuple[bytes, bytes], dek: bytes, wrapped: WrappedKey) -> None:
    """The recipient's raw private key unwraps the secret for the same context."""
    assert unwrap(recipient[0], wrapped, CONTEXT) == dek


def test_recipient_unwraps_with_a_loaded_private_key_object(
    recipient: tuple[bytes, bytes], dek: bytes, wrapped: WrappedKey
) -> None:
    """An X25519PrivateKey (as loaded from a key file) unwraps as well as raw bytes."""
    assert unwrap(X25519PrivateKey.from_private_bytes(recipient[0]), wrapped, CONTEXT) == dek


def test_third_party_cannot_unwrap(wrapped: WrappedKey) -> None:
    """Another agency's private key cannot open a key wrapped for the requester."""
    third_party, _ = new_x25519()
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap(third_party, wrapped, CONTEXT)


@pytest.mark.parametrize(
    "context",
    [
        access_context(RECORD, 2, REQUESTER),
        access_context(RECORD, 1, OTHER_REQUESTER),
        access_context(bytes(32), 1, REQUESTER),
        b"",
    ],
    ids=["other seq", "other requester", "other record", "empty context"],
)
def test_other_access_context_fails(recipient: tuple[bytes, bytes], wrapped: WrappedKey, context: bytes) -> None:
    """A key wrapped for one access does not unwrap for another seq, requester or record."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap(recipient[0], wrapped, context)


def test_two_wraps_use_different_ephemeral_keys(recipient: tuple[bytes, bytes], dek: bytes) -> None:
    """Wrapping the same secret twice uses two ephemeral keys and gives two different sealed values."""
    first, second = wrap_for(recipient[1], dek, CONTEXT), wrap_for(recipient[1], dek, CONTEXT)
    assert first.ephemeral_public != second.ephemeral_public
    assert first.sealed != second.sealed
    assert unwrap(recipient[0], first, CONTEXT) == unwrap(recipient[0], second, CONTEXT) == dek


def test_ephemeral_keys_never_repeat_over_1000_wraps(recipient: tuple[bytes, bytes], dek: bytes) -> None:
    """A thousand wraps draw a thousand distinct ephemeral keys."""
    assert len({wrap_for(recipient[1], dek, CONTEXT).ephemeral_public for _ in range(1000)}) == 1000


def test_tampered_ephemeral_key_fails(recipient: tuple[bytes, bytes], wrapped: WrappedKey) -> None:
    """A changed byte in the ephemeral public key raises IntegrityError."""
    changed = bytearray(wrapped.ephemeral_public)
    changed[0] ^= 0x01
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap(recipient[0], WrappedKey(bytes(changed), wrapped.sealed), CONTEXT)


def test_ephemeral_key_swapped_from_another_wrap_fails(
    recipient: tuple[bytes, bytes], dek: bytes, wrapped: WrappedKey
) -> None:
    """An ephemeral key taken from another wrap does not open this wrap's sealed bytes."""
    other = wrap_for(recipient[1], dek, CONTEXT)
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap(recipient[0], WrappedKey(other.ephemeral_public, wrapped.sealed), CONTEXT)


@pytest.mark.parametrize("position", [0, 1, 13, -17, -1], ids=["version", "nonce", "ciphertext", "tag", "tag end"])
def test_tampered_sealed_bytes_fail(recipient: tuple[bytes, bytes], wrapped: WrappedKey, position: int) -> None:
    """A changed byte anywhere in the sealed part raises IntegrityError."""
    changed = bytearray(wrapped.sealed)
    changed[position] ^= 0x80
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap(recipient[0], WrappedKey(wrapped.ephemeral_public, bytes(changed)), CONTEXT)


def test_low_order_ephemeral_key_fails(recipient: tuple[bytes, bytes], wrapped: WrappedKey) -> None:
    """An all-zero (low-order) ephemeral key gives IntegrityError, not a zero shared secret."""
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap(recipient[0], WrappedKey(bytes(32), wrapped.sealed), CONTEXT)


def test_low_order_recipient_key_is_refused(dek: bytes) -> None:
    """Wrapping for an all-zero (low-order) recipient key raises ValueError."""
    with pytest.raises(ValueError, match="not usable"):
        wrap_for(bytes(32), dek, CONTEXT)


def test_wrapped_key_json_round_trips(recipient: tuple[bytes, bytes], dek: bytes, wrapped: WrappedKey) -> None:
    """to_json gives hex strings and from_json reads them back to an equal, unwrappable key."""
    data = wrapped.to_json()
    assert data == {"ephemeral_public": wrapped.ephemeral_public.hex(), "sealed": wrapped.sealed.hex()}
    restored = WrappedKey.from_json(data)
    assert restored == wrapped
    assert unwrap(recipient[0], restored, CONTEXT) == dek


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"ephemeral_public": "00" * 32},
        {"ephemeral_public": "zz" * 32, "sealed": "00"},
        {"ephemeral_public": "00" * 31, "sealed": "00"},
        {"ephemeral_public": 5, "sealed": "00"},
    ],
    ids=["empty", "no sealed", "not hex", "short ephemeral key", "not a string"],
)
def test_malformed_wrapped_key_json_raises_integrity_error(data: dict[str, object]) -> None:
    """A wrapped key that cannot be parsed is an IntegrityError, never a KeyError or TypeError."""
    with pytest.raises(IntegrityError, match="malformed wrapped key"):
        WrappedKey.from_json(data)


def test_new_x25519_returns_raw_32_byte_pair() -> None:
    """A new key pair is two raw 32-byte encodings whose public half derives from the private."""
    private, public = new_x25519()
    assert len(private) == len(public) == 32
    assert public_from_private(private) == public


def test_access_context_is_record_seq_and_requester() -> None:
    """The access context is the record id, an 8-byte big-endian seq and the 20-byte requester address."""
    assert access_context(RECORD, 0x0102, REQUESTER) == (
        RECORD + (0x0102).to_bytes(8, "big") + bytes.fromhex(REQUESTER[2:])
    )


@pytest.mark.parametrize(
    ("record_id", "seq", "requester"),
    [(RECORD[:31], 1, REQUESTER), (RECORD, 0, REQUESTER), (RECORD, 1, "0x1234"), (RECORD, 2**64, REQUESTER)],
    ids=["short record id", "seq zero", "bad address", "seq too large"],
)
def test_access_context_refuses_malformed_parts(record_id: bytes, seq: int, requester: str) -> None:
    """A record id that is not 32 bytes, a seq outside 1..2^64-1 or a non-address raises ValueError."""
    with pytest.raises(ValueError):
        access_context(record_id, seq, requester)


def test_unwrap_any_opens_with_whichever_held_key_it_was_wrapped_for(recipient: tuple[bytes, bytes]) -> None:
    """A recipient mid-rotation holds two keys: a key wrapped for either opens; for neither, IntegrityError."""
    current, (next_private, next_public) = X25519PrivateKey.generate(), recipient
    held = [current, X25519PrivateKey.from_private_bytes(next_private)]
    dek = new_dek()

    assert unwrap_any(held, wrap_for(next_public, dek, CONTEXT), CONTEXT) == dek
    assert unwrap_any(held, wrap_for(current.public_key().public_bytes_raw(), dek, CONTEXT), CONTEXT) == dek
    stranger = X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(IntegrityError, match=AUTHENTICATION_FAILED):
        unwrap_any(held, wrap_for(stranger, dek, CONTEXT), CONTEXT)
