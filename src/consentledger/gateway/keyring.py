"""The agency keys a running gateway holds, opened so that a half-done key rotation stops it from starting.

A KEK rotation runs with the gateway stopped (see `gateway.rotation`): the gateway takes a shared
lock on its KEK file for as long as it runs, the rotation an exclusive one, so neither starts while
the other holds the file. The X25519 key rotates while the gateway runs: it holds the current key
and, once a rotation has written one, the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consentledger.crypto.files import FileLock, try_lock_file
from consentledger.crypto.keyfiles import load_kek_file, load_x25519_keys, next_keyfile
from consentledger.errors import ConfigurationError
from consentledger.settings import Settings

ROTATE_KEK = "consentledger keys rotate-kek --config agency.toml"
"""The command that starts, resumes and finishes a KEK rotation."""


@dataclass(frozen=True)
class AgencyKeys:
    """A gateway's KEK (with its id), its pseudonym secret, its X25519 keys, and the lock it holds on its KEK file."""

    kek_id: str
    kek: bytes
    pseudonym_secret: bytes
    x25519: X25519PrivateKey
    x25519_next: X25519PrivateKey | None
    lock: FileLock


def open_agency_keys(settings: Settings, password: str) -> AgencyKeys:
    """Return the agency's KEK and X25519 keys, holding a shared lock on the KEK file until `lock.release()`.

    Raises `ConfigurationError` naming the fix while a KEK rotation runs or is half done (its next
    KEK file exists), and `KeystoreError` for an unreadable key file or a wrong password.
    """
    kek_file = settings.kek_keyfile
    lock = try_lock_file(kek_file, exclusive=False)
    if lock is None:
        raise ConfigurationError(f"a KEK rotation is running on {kek_file}: start the gateway once it has finished")
    try:
        if next_keyfile(kek_file).exists():
            raise ConfigurationError(
                f"a KEK rotation of {kek_file} is half done ({next_keyfile(kek_file).name} exists): "
                f"finish it with `{ROTATE_KEK}`, then start the gateway"
            )
        kek_id, kek = load_kek_file(kek_file, password)
        _, pseudonym_secret = load_kek_file(settings.pseudonym_keyfile, password)
        x25519, x25519_next = load_x25519_keys(settings.x25519_keyfile, password)
    except BaseException:
        lock.release()
        raise
    return AgencyKeys(kek_id, kek, pseudonym_secret, x25519, x25519_next, lock)
