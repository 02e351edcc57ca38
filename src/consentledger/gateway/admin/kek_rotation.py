"""Rotating an agency's KEK (offline, resumable) and its X25519 key (through governance, gateway running).

KEK: with every gateway of the agency stopped (enforced on one host by a lock on the KEK file),
the new KEK is written durably as `kek.next.json` before any record depends on it; records are
re-wrapped batch by batch (`store.rotation`); only when none is left under the old KEK does the
next file replace `kek.json`, which destroys the old KEK's file. Run again after a crash at any
point, the same command picks up where the last one stopped. A gateway refuses to start in between.

X25519: the custodian wraps each released key for the X25519 key the chain registers for the
requester at release time, so the switch is a governance change (`set-keys`). The new key is
written as `x25519.next.pem` first; a running gateway holds (or reloads) both and unwraps with the
one that opens a release. Once the chain shows the new public key, `finish_x25519_rotation` makes
it current and destroys the old key's file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from consentledger.chain.ledger import Ledger
from consentledger.crypto.files import try_lock_file
from consentledger.crypto.keyfiles import (
    load_kek_file,
    load_x25519_keys,
    new_next_kek_file,
    new_next_x25519_keyfile,
    next_keyfile,
    promote_keyfile,
)
from consentledger.crypto.keys import keystore_address
from consentledger.errors import ConfigurationError, IntegrityError
from consentledger.settings import Settings
from consentledger.store import create_schema, make_engine
from consentledger.store.rotation import DEFAULT_BATCH, Kek, census, rewrap_all
from consentledger.types import MemberStatus


@dataclass(frozen=True)
class KekProgress:
    """How far a KEK rotation is: `done` of `total` key-holding records are under the new KEK."""

    old_id: str
    new_id: str
    done: int
    total: int
    resumed: bool


@dataclass(frozen=True)
class KekRotated:
    """A finished KEK rotation: this run moved `moved` records, an interrupted earlier one `earlier`."""

    old_id: str
    new_id: str
    moved: int
    earlier: int
    shredded: int

    def summary(self) -> str:
        """Return the one-line summary the CLI prints."""
        earlier = f" ({self.earlier} by an earlier, interrupted run)" if self.earlier else ""
        total = _records(self.moved + self.earlier)
        return (f"rotated KEK {self.old_id} → {self.new_id}: {total} re-wrapped{earlier}, "
                f"{self.shredded} shredded skipped; the old KEK's file is destroyed")


def rotate_kek(
    settings: Settings,
    password: str,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[KekProgress], None] | None = None,
) -> KekRotated:
    """Re-wrap every record's DEK under a new KEK, then make it the agency's KEK; return what was done.

    Starts a rotation, or resumes the one a crash interrupted (its `kek.next.json` exists).
    `progress` hears once before the first batch and after every committed batch. Raises
    `ConfigurationError` while a gateway holds the KEK file or if records are wrapped under a KEK
    that is neither the current nor the next one, `KeystoreError` for a wrong password.
    """
    kek_file = settings.kek_keyfile
    lock = try_lock_file(kek_file, exclusive=True)
    if lock is None:
        raise ConfigurationError(
            f"{kek_file} is in use by a running gateway (or another rotation): stop every gateway of this agency, "
            "then rotate"
        )
    try:
        old = Kek(*load_kek_file(kek_file, password))
        successor = next_keyfile(kek_file)
        resumed = successor.exists()
        new = Kek(*load_kek_file(successor, password)) if resumed else None
        engine = make_engine(settings.store_url)
        try:
            create_schema(engine)
            before = census(engine)
            unknown = before.others(old.id, *([new.id] if new else []))
            if unknown:
                found = ", ".join(f"{n} under {kid}" for kid, n in sorted(unknown.items()))
                raise ConfigurationError(f"the store holds records wrapped under KEKs {kek_file} does not hold "
                                         f"({found}): is this the agency's KEK file?")
            if new is None:
                new = Kek(*new_next_kek_file(kek_file, password))
            done, total = before.under(new.id), before.under(old.id) + before.under(new.id)
            report = progress or (lambda _: None)
            report(KekProgress(old.id, new.id, done, total, resumed))

            def on_batch(count: int) -> None:
                nonlocal done
                done += count
                report(KekProgress(old.id, new.id, done, total, resumed))

            moved = rewrap_all(engine, old, new, batch=batch, on_batch=on_batch)
            left = census(engine).under(old.id)
        finally:
            engine.dispose()
        if left:
            raise IntegrityError(f"{left} records are still wrapped under the old KEK {old.id} (written meanwhile by "
                                 "a gateway on another host?): stop every gateway, then rotate again")
        promote_keyfile(kek_file, "KEK file")
    finally:
        lock.release()
    return KekRotated(old.id, new.id, moved, before.under(new.id), before.shredded)


@dataclass(frozen=True)
class X25519Rotation:
    """Where an agency's X25519 rotation stands: its public keys and the one the chain registers."""

    address: str
    keyfile: Path
    current: bytes
    next: bytes | None
    registered: bytes
    gateway_url: str

    def set_keys_command(self) -> str:
        """Return the governance command that registers the next key (keeping the gateway URL)."""
        key = (self.next or self.current).hex()
        return (f"consentledger org propose set-keys --account {self.address} --x25519 {key} "
                f"--gateway {self.gateway_url}")


def begin_x25519_rotation(settings: Settings, password: str, ledger: Ledger) -> tuple[X25519Rotation, bool]:
    """Return the rotation with its next key, and whether that key was written just now.

    A next key already written (by an earlier call) is kept, so calling again only reports.
    """
    rotation = _x25519_state(settings, password, ledger)
    if rotation.next is not None:
        return rotation, False
    public = new_next_x25519_keyfile(settings.x25519_keyfile, password)
    return X25519Rotation(rotation.address, rotation.keyfile, rotation.current, public, rotation.registered,
                          rotation.gateway_url), True


def finish_x25519_rotation(settings: Settings, password: str, ledger: Ledger) -> tuple[X25519Rotation, bool]:
    """Make the next X25519 key current once the chain registers it; return the new state and whether it changed.

    Raises `ConfigurationError` (naming the governance command) while the chain still registers
    the current key, or if no rotation is under way and the chain's key is not the current one.
    """
    rotation = _x25519_state(settings, password, ledger)
    if rotation.next is None:
        if rotation.registered == rotation.current:
            return rotation, False
        raise ConfigurationError(
            f"no X25519 rotation is under way ({next_keyfile(rotation.keyfile).name} does not exist) and the chain "
            f"registers {rotation.registered.hex()} for {rotation.address}, not {rotation.keyfile.name}'s key"
        )
    if rotation.registered != rotation.next:
        which = "still registers the current" if rotation.registered == rotation.current else "registers neither"
        raise ConfigurationError(
            f"the chain {which} X25519 key ({rotation.registered.hex()}) for {rotation.address}: "
            f"have governance run `{rotation.set_keys_command()}`, then finish"
        )
    promote_keyfile(rotation.keyfile, "X25519 key file")
    return X25519Rotation(rotation.address, rotation.keyfile, rotation.next, None, rotation.registered,
                          rotation.gateway_url), True


def _records(count: int) -> str:
    """Return "1 record" or "N records"."""
    return f"{count} record" if count == 1 else f"{count} records"


def _x25519_state(settings: Settings, password: str, ledger: Ledger) -> X25519Rotation:
    """Return the agency's X25519 rotation state as its key files and the chain show it."""
    address = keystore_address(settings.signer_keystore)
    member = ledger.member(address)
    if member.status is MemberStatus.NONE:
        raise ConfigurationError(f"{address} ({settings.name}) is not a member of this consortium")
    current, successor = load_x25519_keys(settings.x25519_keyfile, password)
    return X25519Rotation(
        address=str(address),
        keyfile=settings.x25519_keyfile,
        current=current.public_key().public_bytes_raw(),
        next=successor.public_key().public_bytes_raw() if successor is not None else None,
        registered=member.x25519_key,
        gateway_url=member.gateway_url or settings.public_url,
    )
