"""`consentledger keys`: create and inspect encrypted signer keystore files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from consentledger.chain.accounts import dev_account
from consentledger.crypto.keys import (
    DEFAULT_PASSWORD_ENV,
    keystore_address,
    new_keystore,
    password_from_env,
)

app = typer.Typer(help="Create and inspect encrypted signer keystores.", no_args_is_help=True)


@app.command("new")
def new(
    out: Annotated[Path, typer.Option("--out", help="Keystore file to write.")],
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the password.")
    ] = DEFAULT_PASSWORD_ENV,
    from_dev_account: Annotated[
        int | None,
        typer.Option(
            "--from-dev-account",
            min=0,
            help="Encrypt dev account N instead of a fresh key (local test chains only).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
) -> None:
    """Write a new encrypted keystore and print its address."""
    password = password_from_env(password_env)
    account = dev_account(from_dev_account) if from_dev_account is not None else None
    typer.echo(new_keystore(out, password, account=account, overwrite=overwrite))


@app.command("show")
def show(
    keystore: Annotated[Path, typer.Argument(help="Keystore file.")],
) -> None:
    """Print the address a keystore holds (no password needed)."""
    typer.echo(keystore_address(keystore))
