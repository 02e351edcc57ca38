"""An agency's registered clients: the staff and applications that sign requests to its gateway.

The agency's administrator adds and revokes clients with the CLI (`consentledger agency client …`),
which writes this table in the gateway's own database; the gateway reads it on every request, so a
revocation takes effect at once, running gateway or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils import is_address, to_checksum_address
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from consentledger.actors import ClientRole, actor_id, new_salt
from consentledger.errors import ClientExistsError, NotFoundError, PayloadValidationError
from consentledger.store.tables import clients
from consentledger.types import ActorId

MAX_NAME = 200


@dataclass(frozen=True)
class Client:
    """A registered client: its key's address, name, role, pseudonym salt and standing."""

    address: str
    name: str
    role: ClientRole
    salt: bytes
    added_at: datetime
    revoked_at: datetime | None = None

    @property
    def actor(self) -> ActorId:
        """Return the pseudonym the client's accesses carry on chain."""
        return actor_id(self.address, self.salt)

    @property
    def active(self) -> bool:
        """Return whether the client may still sign requests."""
        return self.revoked_at is None

    def to_json(self) -> dict[str, object]:
        """Return the client as JSON-ready data (without its salt, which only a disclosure reveals)."""
        return {"address": self.address, "name": self.name, "role": self.role.value,
                "actor": "0x" + self.actor.hex(), "added_at": self.added_at.isoformat(timespec="seconds"),
                "revoked_at": self.revoked_at.isoformat(timespec="seconds") if self.revoked_at else None}


class Clients:
    """Add, revoke and look up an agency's clients in its gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, address: str, name: str, role: ClientRole, *, now: datetime | None = None) -> Client:
        """Register `address` as a client; ClientExistsError if that key is registered already (even revoked)."""
        if not is_address(address):
            raise PayloadValidationError(f"{address!r} is not an address")
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise PayloadValidationError(f"a client's name is 1 to {MAX_NAME} characters")
        client = Client(to_checksum_address(address), name, role, new_salt(), now or datetime.now(UTC))
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(clients).values(
                    address=client.address, name=client.name, role=role.value, salt=client.salt,
                    actor="0x" + client.actor.hex(), added_at=client.added_at,
                ))
        except SqlIntegrityError:
            raise ClientExistsError(f"{client.address} is a registered client already (keys are not reused)") from None
        return client

    def revoke(self, address: str, *, now: datetime | None = None) -> Client:
        """Revoke the client's key from now on and return it; NotFoundError if it was never registered."""
        address = _checked(address)
        with self.engine.begin() as conn:
            conn.execute(update(clients).where(clients.c.address == address, clients.c.revoked_at.is_(None))
                         .values(revoked_at=now or datetime.now(UTC)))
        client = self.get(address)
        if client is None:
            raise NotFoundError(f"{address} is not a client of this agency")
        return client

    def get(self, address: str) -> Client | None:
        """Return the client with this key (revoked or not), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(clients).where(clients.c.address == _checked(address))).mappings().first()
        return None if row is None else _client(row)

    def by_actor(self, actor: bytes) -> Client | None:
        """Return the client whose pseudonym is `actor`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(clients).where(clients.c.actor == "0x" + actor.hex())).mappings().first()
        return None if row is None else _client(row)

    def all(self) -> list[Client]:
        """Return every client, in the order they were added."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(clients).order_by(clients.c.added_at, clients.c.address)).mappings().all()
        return [_client(r) for r in rows]


def _checked(address: str) -> str:
    if not is_address(address):
        raise PayloadValidationError(f"{address!r} is not an address")
    return to_checksum_address(address)


def _client(row: object) -> Client:
    r = dict(row)  # type: ignore[call-overload]
    return Client(r["address"], r["name"], ClientRole(r["role"]), bytes(r["salt"]), r["added_at"], r["revoked_at"])
