"""`consentledger chain`: run a local development chain in the foreground; fund an account."""

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
from consentledger.cli.common import DEFAULT_RPC, KeystoreOption, PasswordEnvOption, RpcOption, load_signer
from consentledger.errors import NodeStartError

app = typer.Typer(
    help="Run a local development chain (ganache or anvil) with funded dev accounts; fund an account.",
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


@app.command()
def fund(
    address: Annotated[str, typer.Argument(help="The account to pay, e.g. an agency's signer.", show_default=False)],
    amount: Annotated[
        str, typer.Option("--amount", help="How much: 1ether, 0.5 ether, 1000000gwei, or plain wei.",
                          show_default=False),
    ],
    rpc: RpcOption = DEFAULT_RPC,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: Annotated[
        int | None,
        typer.Option("--dev-account", "--from-dev-account",
                     help="Pay from local dev account N (test chains only) instead of a keystore."),
    ] = None,
) -> None:
    """Send AMOUNT to ADDRESS from a dev account or a keystore, wait until it is mined, and print the new balance."""
    from consentledger.chain.funds import format_amount, parse_amount
    from consentledger.chain.transfer import fund as send

    wei = parse_amount(amount)
    payer = load_signer(keystore, password_env, dev_account)
    sent = send(rpc, payer, address, wei)
    typer.echo(f"sent {format_amount(sent.amount)} from {sent.payer} to {sent.to} in tx {sent.tx_hash} "
               f"(block {sent.block})")
    typer.echo(f"balance of {sent.to}: {format_amount(sent.balance)}")


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
