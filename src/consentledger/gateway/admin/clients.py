"""The administrator registers and revokes the agency's clients (staff and applications) in its gateway's store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from consentledger.actors import ClientRole
from consentledger.crypto.keys import new_keystore
from consentledger.errors import ConfigurationError
from consentledger.settings import Settings
from consentledger.store import create_schema, make_engine
from consentledger.store.clients import Client, Clients


def agency_clients(settings: Settings) -> Clients:
    """Return the client registry in the store of the gateway `settings` describe (tables created if missing)."""
    engine = make_engine(settings.store_url)
    create_schema(engine)
    return Clients(engine)


def add_client(
    settings: Settings, name: str, role: ClientRole, *, address: str | None = None,
    new_key: Path | None = None, password: str | None = None, extra: Sequence[ClientRole] = (),
) -> Client:
    """Register a client by its key's `address`, or write a new encrypted keystore at `new_key` and register that.

    The client keeps its key; the gateway stores only the address, name, role (and `extra` roles
    beside it: emergency beside request) and pseudonym salt.
    """
    if (address is None) == (new_key is None):
        raise ConfigurationError("give the client's --address or --new-keystore FILE (one of them)")
    if new_key is not None:
        address = new_keystore(new_key, password or "")
    assert address is not None
    return agency_clients(settings).add(address, name, role, extra=extra)
