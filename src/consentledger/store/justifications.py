"""The justifications of an agency's emergency overrides: kept here, salted, only their hash goes on chain.

The chain's word for an override is keccak256(salt ‖ text), the salt 32 random bytes, so nobody can
confirm a guessed text against the public hash; an auditor reads the text and salt from the
requester's gateway and checks they hash to what the chain recorded. A row is written before the
override is sent, so an override on chain never lacks its text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils import keccak
from sqlalchemy import Engine, delete, insert, select

from consentledger.errors import PayloadValidationError
from consentledger.store.tables import override_justifications

MAX_JUSTIFICATION = 4096
"""Most characters a justification may hold."""


@dataclass(frozen=True)
class Justification:
    """An override's justification: its text, the salt and the hash the chain holds."""

    text: str
    salt: bytes
    record: str
    purpose: int
    actor: str
    created_at: datetime

    @property
    def hash(self) -> bytes:
        """Return keccak256(salt ‖ text as UTF-8): the override's justification word on chain."""
        return justification_hash(self.salt, self.text)


def justification_hash(salt: bytes, text: str) -> bytes:
    """Return keccak256(salt ‖ text as UTF-8)."""
    return keccak(salt + text.encode())


def checked_text(text: str) -> str:
    """Return `text` if it is a justification (1 to MAX_JUSTIFICATION characters, not only blanks); else 422."""
    if not text.strip() or len(text) > MAX_JUSTIFICATION:
        raise PayloadValidationError(f"an override's justification is 1 to {MAX_JUSTIFICATION} characters of text")
    return text


class Justifications:
    """Keep and read the agency's override justifications in its gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def keep(self, text: str, *, record: str, purpose: int, actor: str, now: datetime | None = None) -> Justification:
        """Store `text` under a fresh salt and return it; its `hash` is what the override sends to the chain."""
        kept = Justification(checked_text(text), os.urandom(32), record, purpose, actor, now or datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(insert(override_justifications).values(
                hash="0x" + kept.hash.hex(), salt=kept.salt, text=kept.text, record=record, purpose=purpose,
                actor=actor, created_at=kept.created_at,
            ))
        return kept

    def drop(self, kept: Justification) -> None:
        """Forget a justification whose override the chain refused (nothing on chain names it)."""
        with self.engine.begin() as conn:
            table = override_justifications
            conn.execute(delete(table).where(table.c.hash == "0x" + kept.hash.hex()))

    def find(self, word: bytes) -> Justification | None:
        """Return the justification whose hash is `word` (an override's word on chain), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(override_justifications)
                               .where(override_justifications.c.hash == "0x" + bytes(word).hex())).mappings().first()
        if row is None:
            return None
        return Justification(row["text"], bytes(row["salt"]), row["record"], int(row["purpose"]), row["actor"],
                             row["created_at"])
