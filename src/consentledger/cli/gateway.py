"""`consentledger agency init` and `consentledger gateway serve`."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from consentledger.cli import clients
from consentledger.cli.common import (
    DEFAULT_MANIFEST,
    DEFAULT_RPC,
    DevAccountOption,
    ManifestOption,
    PasswordEnvOption,
    RpcOption,
    console,
    show_time,
)
from consentledger.cli.funding import print_funding

agency_app = typer.Typer(help="Set up an agency: keys, gateway configuration, clients.", no_args_is_help=True)
agency_app.add_typer(clients.app, name="client")
gateway_app = typer.Typer(help="Run an agency gateway.", no_args_is_help=True)


@agency_app.command("init")
def init(
    name: Annotated[str, typer.Argument(help="The agency's name.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write agency.toml and the keys.")] = Path("."),
    port: Annotated[int, typer.Option(help="The gateway's listen port.")] = 9001,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    store_url: Annotated[str, typer.Option(help="sqlite:///file or postgresql://…")] = "sqlite:///agency.db",
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    from_dev_account: DevAccountOption = None,
) -> None:
    """Write DIR/agency.toml and new encrypted keys (signer, X25519, KEK); print what to register and how to fund it."""
    from consentledger.chain.accounts import dev_account
    from consentledger.crypto.keys import password_from_env
    from consentledger.gateway.admin.setup import init_agency

    account = dev_account(from_dev_account) if from_dev_account is not None else None
    agency = init_agency(
        directory, name, password_from_env(password_env), rpc_url=rpc, manifest=manifest, port=port,
        store_url=store_url, password_env=password_env, account=account,
    )
    console.print(f"config        {agency.config}")
    console.print(f"address       {agency.address}")
    console.print(f"x25519        {agency.x25519_public.hex()}")
    console.print(f"gateway URL   {agency.public_url}")
    console.print("admit it with: consentledger org propose admit "
                  f"--account {agency.address} --roles custodian,requester --name {name!r} "
                  f"--x25519 {agency.x25519_public.hex()} --gateway {agency.public_url}")
    print_funding(rpc, agency.address)


@gateway_app.command("serve")
def serve(
    config: Annotated[Path, typer.Option("--config", help="The agency's TOML config.")] = Path("agency.toml"),
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "warning",
    listen_fd: Annotated[int | None, typer.Option(
        "--listen-fd", help="Serve on this inherited socket, bound to the config's port by the starting process.",
    )] = None,
) -> None:
    """Serve the agency gateway until Ctrl-C."""
    from consentledger.gateway.runtime import Gateway
    from consentledger.gateway.serve import inherited, listen, run
    from consentledger.settings import load_settings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(config)
    sock = listen(settings.host, settings.port) if listen_fd is None else inherited(listen_fd, settings.port)
    try:
        gateway = Gateway.open(settings)
    except BaseException:
        sock.close()
        raise
    console.print(f"gateway {settings.name} ({gateway.org}) on http://{settings.host}:{settings.port}")
    run(gateway, sock, log_level=log_level)


@gateway_app.command("sweep")
def sweep(
    config: Annotated[Path, typer.Option("--config", help="The agency's TOML config.")] = Path("agency.toml"),
    batch: Annotated[
        int | None, typer.Option(min=1, max=10_000, help="Records shredded per database transaction.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Crypto-shred and tombstone every record past its retention or whose purposes all ended, now.

    Asks the running gateway of this config if it answers; otherwise sweeps and relays here.
    """
    from consentledger.cli.consent import print_json
    from consentledger.gateway.admin.sweep_once import run_sweep
    from consentledger.settings import load_settings

    report = run_sweep(load_settings(config), batch=batch)
    if as_json:
        print_json(report)
        return
    if not report.get("swept"):
        console.print(f"not swept: another replica holds the sweeper's lock ({report['queued']} writes queued)")
        return
    reasons = Counter(item["reason"] for item in report["shredded"])
    summary = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "none due"
    console.print(f"swept at block {report['block']} ({show_time(report['block_time'] or 0)}) via {report['via']}: "
                  f"shredded {len(report['shredded'])} records ({summary}); "
                  f"{len(report['requeued'])} failed tombstones queued again; {report['queued']} chain writes queued")
