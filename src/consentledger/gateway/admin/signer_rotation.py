"""Rotating an agency's signing key through governance (`keys rotate-signer`).

The new keystore is written beside the current one (`signer.next.json`); governance moves the
member to it (`org propose rotate-signer`: the successor inherits roles, keys, records and the
consents granted to the organisation, the old key is revoked); `--finish` then makes the new
keystore current and destroys the old one, and the restarted gateway takes over the old key's
records. Between the governance change and the restart the gateway still signs with the revoked
key, so its chain writes wait (the relay retries them); finish and restart promptly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consentledger.chain.ledger import Ledger
from consentledger.crypto.keyfiles import next_keyfile, promote_keyfile
from consentledger.crypto.keys import keystore_address, load_account, new_keystore
from consentledger.errors import ConfigurationError
from consentledger.settings import Settings
from consentledger.types import MemberStatus


@dataclass(frozen=True)
class SignerRotation:
    """Where an agency's signer rotation stands: its keystore, current and next addresses, and the chain's view."""

    keystore: Path
    current: str
    next: str | None
    on_chain: str
    """The signer the chain says the current key's organisation signs with now."""

    def rotate_command(self) -> str:
        """Return the governance command that moves the member to the next key."""
        return f"consentledger org propose rotate-signer --account {self.current} --successor {self.next}"


def begin_signer_rotation(settings: Settings, password: str, ledger: Ledger) -> tuple[SignerRotation, bool]:
    """Return the rotation with its next signer, and whether that keystore was written just now."""
    rotation = _state(settings, ledger)
    if rotation.next is not None:
        return rotation, False
    load_account(settings.signer_keystore, password)  # the password must open the current keystore too
    successor = new_keystore(next_keyfile(settings.signer_keystore), password)
    return SignerRotation(rotation.keystore, rotation.current, str(successor), rotation.on_chain), True


def finish_signer_rotation(settings: Settings, ledger: Ledger) -> tuple[SignerRotation, bool]:
    """Make the next keystore current once governance has rotated the member to it; say whether it changed.

    Raises `ConfigurationError` naming the governance command while the chain has not rotated yet.
    """
    rotation = _state(settings, ledger)
    if rotation.next is None:
        if rotation.on_chain == rotation.current:
            return rotation, False
        raise ConfigurationError(f"no signer rotation is under way here, yet the chain moved {rotation.current} "
                                 f"to {rotation.on_chain}")
    if rotation.on_chain != rotation.next:
        raise ConfigurationError(
            f"governance has not rotated {rotation.current} to {rotation.next} yet: "
            f"have it run `{rotation.rotate_command()}`, then finish"
        )
    promote_keyfile(settings.signer_keystore, "signer keystore")
    return SignerRotation(rotation.keystore, rotation.next, None, rotation.on_chain), True


def _state(settings: Settings, ledger: Ledger) -> SignerRotation:
    current = str(keystore_address(settings.signer_keystore))
    if ledger.member(current).status is MemberStatus.NONE:
        raise ConfigurationError(f"{current} ({settings.name}) is not a member of this consortium")
    upcoming = next_keyfile(settings.signer_keystore)
    successor = str(keystore_address(upcoming)) if upcoming.exists() else None
    return SignerRotation(settings.signer_keystore, current, successor, str(ledger.current_signer(current)))
