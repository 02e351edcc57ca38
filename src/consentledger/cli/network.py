"""`consentledger network besu`: generate, check and govern the allowlist of a Besu QBFT network."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from consentledger.cli.common import DEFAULT_MANIFEST, DEFAULT_RPC, ManifestOption, RpcOption, console
from consentledger.errors import ConfigurationError, NetworkConfigError
from consentledger.network.besu.generate import DEFAULT_BLOCK_PERIOD, DEFAULT_CHAIN_ID, MIN_VALIDATORS

app = typer.Typer(help="Permissioned networks beyond one machine.", no_args_is_help=True)
besu_app = typer.Typer(
    help="A Hyperledger Besu QBFT network: generate it, check it offline, keep its allowlist following governance.",
    no_args_is_help=True,
)
app.add_typer(besu_app, name="besu")


class AllowlistFormat(StrEnum):
    """How `allowlist` prints the accounts."""

    TOML = "toml"
    JSON = "json"
    RPC = "rpc"


@besu_app.command()
def init(
    out: Annotated[Path, typer.Option("--out", help="Directory to create (must not exist or be empty).")],
    validators: Annotated[int, typer.Option("--validators", help="QBFT validators (at least 4).")] = MIN_VALIDATORS,
    chain_id: Annotated[int, typer.Option("--chain-id", help="Chain id.")] = DEFAULT_CHAIN_ID,
    block_period: Annotated[int, typer.Option("--block-period", help="Seconds between blocks.")] = DEFAULT_BLOCK_PERIOD,
    member: Annotated[
        list[str] | None, typer.Option("--member", help="A member signer to fund and allow (repeat).")
    ] = None,
    deployer: Annotated[
        str | None, typer.Option("--deployer", help="The account that runs `consentledger deploy`.")
    ] = None,
    example: Annotated[
        bool, typer.Option("--example", help="Mark the keys as a published example, never for production.")
    ] = False,
) -> None:
    """Write a ready QBFT network: keys, genesis, node configs, allowlists, compose file and README."""
    from consentledger.network.besu.generate import NetworkSpec, generate_network

    spec = NetworkSpec(
        validators=validators, chain_id=chain_id, block_period=block_period,
        deployer=deployer, members=tuple(member or ()), example=example,
    )
    network = generate_network(out, spec)
    console.print(f"network     {out}  (chain id {network.chain_id})")
    for node in network.nodes:
        console.print(f"  {node.name:<11} {node.role.value:<9} {node.key.address}  {node.host}:{node.p2p_port}")
    console.print(f"accounts    {', '.join(network.accounts)}")
    console.print(f"next        consentledger network besu check {out}   then: cd {out} && docker compose up -d")


@besu_app.command()
def check(directory: Annotated[Path, typer.Argument(help="A directory written by `init`.")]) -> None:
    """Verify a network directory offline; print n, f and quorum, and each problem on its own line."""
    from consentledger.network.besu.check import check_network

    report = check_network(directory)
    console.print(f"network     {directory}  (chain id {report.chain_id if report.chain_id is not None else '?'})")
    console.print(f"image       {report.image or '?'}")
    console.print(f"nodes       {', '.join(report.nodes) or '-'}")
    console.print(f"validators  n={report.n}  f={report.f}  quorum={report.quorum}")
    for validator in report.validators:
        console.print(f"  {validator}")
    if report.ok:
        console.print("ok          every check passed")
        return
    for problem in report.problems:
        typer.echo(f"{directory / problem.file}: {problem.message}", err=True)
    raise NetworkConfigError(f"{directory}: {len(report.problems)} problem(s) found")


@besu_app.command()
def allowlist(
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    output: Annotated[
        AllowlistFormat, typer.Option("--format", case_sensitive=False, help="toml, json or rpc (JSON-RPC calls).")
    ] = AllowlistFormat.TOML,
    current: Annotated[
        Path | None, typer.Option("--current", help="The permissions_config.toml in force now (to diff against).")
    ] = None,
    with_deployer: Annotated[
        bool, typer.Option("--deployer/--no-deployer", help="Keep the manifest's deployer on the list.")
    ] = True,
    keep: Annotated[
        list[str] | None, typer.Option("--keep", help="Another account to keep on the list (repeat).")
    ] = None,
) -> None:
    """Print the accounts allowlist governance asks for: ACTIVE and SUSPENDED members in, REVOKED out."""
    from consentledger.cli.common import open_ledger
    from consentledger.network.besu.allowlist import (
        allowlist_change,
        governed_accounts,
        permissions_toml,
        read_permissions,
        rpc_requests,
    )

    if output is AllowlistFormat.RPC and current is None:
        raise ConfigurationError("--format rpc needs --current permissions_config.toml (the list to change)")
    in_force = read_permissions(current) if current is not None else None
    ledger = open_ledger(rpc, manifest)
    try:
        wanted = governed_accounts(
            ledger.members(), deployer=ledger.deployment.deployer if with_deployer else None, keep=keep or ()
        )
    finally:
        ledger.close()
    change = allowlist_change(wanted, in_force.accounts if in_force else ())
    if output is AllowlistFormat.JSON:
        typer.echo(json.dumps({"accounts": change.accounts, "add": change.add, "remove": change.remove}, indent=2))
    elif output is AllowlistFormat.RPC:
        for request in rpc_requests(change):
            typer.echo(json.dumps(request))
    elif in_force is not None:
        typer.echo(permissions_toml(change, in_force.nodes), nl=False)
    else:
        from consentledger.network.besu.configs import toml_value

        typer.echo(f"accounts-allowlist={toml_value(list(change.accounts))}")
