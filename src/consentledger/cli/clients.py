"""`consentledger agency client add|revoke|list`: the agency's staff and applications, each with its own key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from consentledger.cli.common import PasswordEnvOption, console

app = typer.Typer(help="The agency's clients: staff and applications signing with their own keys.",
                  no_args_is_help=True)
ConfigOption = Annotated[Path, typer.Option("--config", help="The agency's TOML config.")]


@app.command("add")
def add(
    name: Annotated[str, typer.Option(help="Who the client is, e.g. \"Ana Lima (clerk)\" or \"intake app\".")],
    role: Annotated[list[str], typer.Option(help="collect, request or audit-liaison; repeat it to add emergency "
                                                 "beside request (--role request --role emergency).")],
    address: Annotated[
        str | None, typer.Option(help="The client's own key (its address); it keeps the key.", show_default=False)
    ] = None,
    new_keystore: Annotated[
        Path | None,
        typer.Option("--new-keystore", help="Create the client's key in this keystore file instead (password "
                                            "from --password-env).", show_default=False),
    ] = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_CLIENT_PASSWORD",
    config: ConfigOption = Path("agency.toml"),
) -> None:
    """Register a client of this agency's gateway; print its address and its actor pseudonym."""
    from consentledger.actors import ClientRole
    from consentledger.crypto.keys import password_from_env
    from consentledger.gateway.admin.clients import add_client
    from consentledger.settings import load_settings

    password = password_from_env(password_env) if new_keystore is not None else None
    main, *extra = [ClientRole.parse(r) for r in role]
    client = add_client(load_settings(config), name, main, address=address, new_key=new_keystore,
                        password=password, extra=extra)
    console.print(f"client  {client.address}  {client.role_names}  {client.name}")
    console.print(f"actor   0x{client.actor.hex()}  (what its accesses carry on chain)")
    if new_keystore is not None:
        console.print(f"key     {new_keystore} (hand it to the client; the gateway keeps no copy)")


@app.command("revoke")
def revoke(
    address: Annotated[str, typer.Option(help="The client's address.")],
    config: ConfigOption = Path("agency.toml"),
) -> None:
    """Revoke a client's key: the gateway refuses it from the next request on."""
    from consentledger.gateway.admin.clients import agency_clients
    from consentledger.settings import load_settings

    client = agency_clients(load_settings(config)).revoke(address)
    console.print(f"revoked {client.address} ({client.name}) at {client.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


@app.command("list")
def list_clients(config: ConfigOption = Path("agency.toml")) -> None:
    """List the agency's clients: address, role, name, actor, standing."""
    from rich.table import Table

    from consentledger.gateway.admin.clients import agency_clients
    from consentledger.settings import load_settings

    table = Table("address", "role", "name", "actor", "added (UTC)", "revoked (UTC)")
    for c in agency_clients(load_settings(config)).all():
        table.add_row(c.address, c.role_names, c.name, "0x" + c.actor.hex(), f"{c.added_at:%Y-%m-%d %H:%M}",
                      f"{c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "-")
    console.print(table)
