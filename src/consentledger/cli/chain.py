"""`consentledger chain`: run a local development chain in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import typer

from consentledger.chain.accounts import dev_accounts
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.errors import NodeStartError

app = typer.Typer(
    help="Run a local development chain (ganache or anvil) with funded dev accounts.",
    no_args_is_help=True,
)


@app.command()
def up(
    kind: Annotated[
        ChainKind, typer.Option("--kind", case_sensitive=False, help="Chain implementation.")
    ] = ChainKind.GANACHE,
    port: Annotated[
        int | None, typer.Option("--port", help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
    accounts: Annotated[
        int, typer.Option("--accounts", min=1, help="Number of funded dev accounts.")
    ] = 10,
    chain_id: Annotated[int, typer.Option("--chain-id", min=1, help="Chain id.")] = 1337,
    block_time: Annotated[
        float | None,
        typer.Option("--block-time", min=0, help="Seconds between blocks (default: instamine)."),
    ] = None,
    free_gas: Annotated[
        bool,
        typer.Option("--free-gas", help="Zero base fee and gas price, as on a free-gas Besu network (anvil only)."),
    ] = False,
) -> None:
    """Start a local chain, print its RPC URL and dev keys, and run until Ctrl-C or SIGTERM.

    `--kind anvil --block-time 2 --free-gas` behaves like a Besu QBFT network with free gas: blocks
    every 2 s, gas price 0.
    """
    node = start_node(
        kind, port=port, accounts=accounts, chain_id=chain_id, block_time=block_time, free_gas=free_gas
    )
    with _stop_on_signals() as stop, node:
        _print_banner(node, accounts)
        while not stop.wait(0.5):
            if not node.running():
                raise NodeStartError(
                    f"{node.kind.value} exited unexpectedly with code {node.process.returncode}"
                )
    typer.echo("chain stopped")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Yield an event that SIGINT and SIGTERM set instead of interrupting or killing us."""
    stop = threading.Event()

    def _handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, _handle) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _print_banner(node: LocalNode, accounts: int) -> None:
    """Print the RPC URL on its own line (scripts parse it), then the dev accounts."""
    typer.echo(f"RPC URL: {node.rpc_url}")
    typer.echo(f"Chain: {node.kind.value}, chain id {node.chain_id}" + (", free gas" if node.free_gas else ""))
    typer.echo("")
    typer.echo("Dev accounts (development keys -- never use on a real network; anyone has them):")
    for index, account in enumerate(dev_accounts(accounts)):
        typer.echo(f"  ({index}) {account.address}  0x{account.key.hex()}")
    typer.echo("")
    typer.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
