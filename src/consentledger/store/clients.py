"""An agency's registered clients: the staff and applications that sign requests to its gateway.

The agency's administrator adds and revokes clients with the CLI (`consentledger agency client …`),
which writes this table in the gateway's own database; the gateway reads it on every request, so a
revocation takes effect at once, running gateway or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_utils import is_address, to_checksum_address
from sqlalchemy import ColumnElement, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from consentledger.actors import ClientRole, actor_id, new_salt
from consentledger.errors import ClientExistsError, NotFoundError, PayloadValidationError
from consentledger.store.tables import client_roles, clients
from consentledger.types import ActorId

MAX_NAME = 200
EXTRA_ROLES = {ClientRole.EMERGENCY: ClientRole.REQUEST}
"""The roles a client may hold beside its main one, and the main role each needs."""


@dataclass(frozen=True)
class Client:
    """A registered client: its key's address, name, role (and any beside it), pseudonym salt and standing."""

    address: str
    name: str
    role: ClientRole
    salt: bytes
    added_at: datetime
    revoked_at: datetime | None = None
    extra_roles: tuple[ClientRole, ...] = ()
    """Roles held beside the main one (`EXTRA_ROLES`): emergency beside request."""

    @property
    def role_names(self) -> str:
        """Return the client's roles as the CLI names them, comma-separated, the main one first."""
        return ",".join([self.role.value, *(r.value for r in self.extra_roles)])

    def holds(self, role: ClientRole) -> bool:
        """Return whether the client holds `role`, as its main role or beside it."""
        return role is self.role or role in self.extra_roles

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
                "roles": [self.role.value, *(r.value for r in self.extra_roles)],
                "actor": "0x" + self.actor.hex(), "added_at": self.added_at.isoformat(timespec="seconds"),
                "revoked_at": self.revoked_at.isoformat(timespec="seconds") if self.revoked_at else None}


class Clients:
    """Add, revoke and look up an agency's clients in its gateway's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self, address: str, name: str, role: ClientRole, *, extra: Sequence[ClientRole] = (),
        now: datetime | None = None,
    ) -> Client:
        """Register `address` as a client with `role` (and `extra` roles beside it, see EXTRA_ROLES).

        ClientExistsError if that key is registered already (even revoked); PayloadValidationError
        for a role that cannot be held (emergency only beside request).
        """
        if not is_address(address):
            raise PayloadValidationError(f"{address!r} is not an address")
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise PayloadValidationError(f"a client's name is 1 to {MAX_NAME} characters")
        extras = tuple(dict.fromkeys(r for r in extra if r is not role))
        for held in (role, *extras):
            needs = EXTRA_ROLES.get(held)
            if needs is not None and role is not needs:
                raise PayloadValidationError(f"the {held.value} role is held beside the {needs.value} role: "
                                             f"give --role {needs.value} --role {held.value}")
            if needs is None and held in extras:
                raise PayloadValidationError(f"a client holds one main role; {held.value} cannot be held beside "
                                             f"{role.value}")
        client = Client(to_checksum_address(address), name, role, new_salt(), now or datetime.now(UTC),
                        extra_roles=extras)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(clients).values(
                    address=client.address, name=client.name, role=role.value, salt=client.salt,
                    actor="0x" + client.actor.hex(), added_at=client.added_at,
                ))
                if extras:
                    conn.execute(insert(client_roles), [{"address": client.address, "role": r.value} for r in extras])
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
        found = self._select(clients.c.address == _checked(address))
        return found[0] if found else None

    def by_actor(self, actor: bytes) -> Client | None:
        """Return the client whose pseudonym is `actor`, or None."""
        found = self._select(clients.c.actor == "0x" + actor.hex())
        return found[0] if found else None

    def all(self) -> list[Client]:
        """Return every client, in the order they were added."""
        return self._select(None)

    def _select(self, where: ColumnElement[bool] | None) -> list[Client]:
        """Return the clients matching `where` (all for None), in the order added, with their extra roles."""
        query = select(clients).order_by(clients.c.added_at, clients.c.address)
        extra = select(client_roles.c.address, client_roles.c.role).order_by(client_roles.c.role)
        if where is not None:
            query = query.where(where)
            extra = extra.where(client_roles.c.address.in_(select(clients.c.address).where(where)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            extras: dict[str, list[ClientRole]] = {}
            for address, role in conn.execute(extra).all():
                extras.setdefault(address, []).append(ClientRole(role))
        return [_client(r, extras.get(r["address"], [])) for r in rows]


def _checked(address: str) -> str:
    if not is_address(address):
        raise PayloadValidationError(f"{address!r} is not an address")
    return to_checksum_address(address)


def _client(row: object, extra: Sequence[ClientRole] = ()) -> Client:
    r = dict(row)  # type: ignore[call-overload]
    return Client(r["address"], r["name"], ClientRole(r["role"]), bytes(r["salt"]), r["added_at"], r["revoked_at"],
                  tuple(extra))
