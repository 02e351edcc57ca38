"""Re-wrapping a secret (a record's DEK) for one requester and one on-chain access.

Each wrap makes a fresh ephemeral X25519 key, derives an AES-256 key from the shared secret with
HKDF-SHA256 (salt = ephemeral public ‖ recipient public, info = a domain tag ‖ context) and seals
the secret with it, the context also serving as AAD. The context names the access, so a wrapped
key answers exactly one `AccessRecorded` entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import is_address, to_canonical_address

from consentledger.crypto.vault import AUTHENTICATION_FAILED, RECORD_ID_BYTES, open_sealed, seal
from consentledger.errors import IntegrityError

X25519_BYTES = 32
"""The length of a raw X25519 public or private key."""

_HKDF_INFO_PREFIX = b"consentledger/keyx/v1"
_SEQ_BYTES = 8


@dataclass(frozen=True)
class WrappedKey:
    """A secret sealed for one recipient: the sender's ephemeral public key and the sealed bytes."""

    ephemeral_public: bytes
    sealed: bytes

    def __post_init__(self) -> None:
        if len(self.ephemeral_public) != X25519_BYTES:
            raise ValueError(f"an X25519 public key is {X25519_BYTES} bytes, got {len(self.ephemeral_public)}")

    def to_json(self) -> dict[str, str]:
        """Return a JSON object of lowercase hex strings (no 0x), the form gateways exchange."""
        return {"ephemeral_public": self.ephemeral_public.hex(), "sealed": self.sealed.hex()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WrappedKey:
        """Return the wrapped key `to_json` described; raise `IntegrityError` if it is malformed."""
        try:
            return cls(bytes.fromhex(data["ephemeral_public"]), bytes.fromhex(data["sealed"]))
        except (KeyError, TypeError, ValueError):
            raise IntegrityError("malformed wrapped key") from None


def new_x25519() -> tuple[bytes, bytes]:
    """Return a fresh X25519 key pair as raw 32-byte (private, public) encodings."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def public_from_private(private: bytes) -> bytes:
    """Return the raw X25519 public key of the raw private key `private`."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def access_context(record_id: bytes, seq: int, requester: str) -> bytes:
    """Return the context naming one on-chain access: `record_id (32) ‖ seq (8, big-endian) ‖ requester (20)`.

    `seq` is the access's 1-based position in the record's chain (`AccessRecorded.seq`) and
    `requester` its 0x address; the fixed widths keep distinct accesses from sharing a context.
    """
    if len(record_id) != RECORD_ID_BYTES:
        raise ValueError(f"a record id is {RECORD_ID_BYTES} bytes, got {len(record_id)}")
    if not 1 <= seq < 2 ** (8 * _SEQ_BYTES):
        raise ValueError(f"an access seq counts from 1, got {seq}")
    if not is_address(requester):
        raise ValueError(f"not an address: {requester!r}")
    return record_id + seq.to_bytes(_SEQ_BYTES, "big") + to_canonical_address(requester)


def wrap_for(recipient_public: bytes, secret: bytes, context: bytes) -> WrappedKey:
    """Return `secret` sealed so only the holder of `recipient_public`'s private key can open it, for `context`.

    Every call uses a fresh ephemeral key. Raises `ValueError` if `recipient_public` is not a usable
    X25519 public key.
    """
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError:  # a low-order point: the shared secret would be all zeros
        raise ValueError("the recipient's X25519 public key is not usable") from None
    key = _derive(shared, ephemeral_public, recipient_public, context)
    return WrappedKey(ephemeral_public, seal(key, secret, context))


def unwrap(recipient_private: X25519PrivateKey | bytes, wrapped: WrappedKey, context: bytes) -> bytes:
    """Return the secret that `wrap_for` sealed for this recipient and `context`.

    Raises `IntegrityError` for another recipient, another context, or any changed byte.
    """
    if not isinstance(recipient_private, X25519PrivateKey):
        recipient_private = X25519PrivateKey.from_private_bytes(recipient_private)
    try:
        shared = recipient_private.exchange(X25519PublicKey.from_public_bytes(wrapped.ephemeral_public))
    except ValueError:
        raise IntegrityError(AUTHENTICATION_FAILED) from None
    recipient_public = recipient_private.public_key().public_bytes_raw()
    key = _derive(shared, wrapped.ephemeral_public, recipient_public, context)
    return open_sealed(key, wrapped.sealed, context)


def unwrap_any(recipient_privates: Sequence[X25519PrivateKey], wrapped: WrappedKey, context: bytes) -> bytes:
    """Return the secret `wrap_for` sealed for whichever of `recipient_privates` it was wrapped for.

    For a recipient part-way through a key rotation, which holds its current and its next key.
    Raises `IntegrityError` if none of them opens it.
    """
    for private in recipient_privates:
        try:
            return unwrap(private, wrapped, context)
        except IntegrityError:
            continue
    raise IntegrityError(AUTHENTICATION_FAILED)


def _derive(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, context: bytes) -> bytes:
    """Return the AES-256 key for one wrap: HKDF-SHA256 over the X25519 output, bound to both keys and `context`."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=_HKDF_INFO_PREFIX + context,
    )
    return hkdf.derive(shared)
