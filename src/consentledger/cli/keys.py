"""`consentledger keys`: create and inspect signer keystores; rotate an agency's KEK, X25519 key and signer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from consentledger.chain.accounts import dev_account
from consentledger.cli.common import console
from consentledger.crypto.keys import (
    DEFAULT_PASSWORD_ENV,
    keystore_address,
    new_keystore,
    password_from_env,
)

if TYPE_CHECKING:
    from consentledger.gateway.admin.kek_rotation import KekProgress

app = typer.Typer(help="Create and inspect signer keystores; rotate an agency's KEK and X25519 key.",
                  no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", help="The agency's TOML config.")]


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


@app.command("rotate-kek")
def rotate_kek(
    config: ConfigOption = Path("agency.toml"),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Records re-wrapped per transaction.")] = 500,
) -> None:
    """Re-wrap every record key under a new KEK and destroy the old one (stop the agency's gateways first).

    Payloads are not re-encrypted. After a crash, run the same command again: it resumes.
    """
    from consentledger.gateway.admin.kek_rotation import rotate_kek as rotate
    from consentledger.settings import load_settings

    settings = load_settings(config)
    rotated = rotate(settings, password_from_env(settings.password_env), batch=batch_size,
                     progress=_ProgressPrinter())
    console.print(rotated.summary())


@app.command("rotate-x25519")
def rotate_x25519(
    config: ConfigOption = Path("agency.toml"),
    finish: Annotated[
        bool, typer.Option("--finish", help="Make the new key current once governance has registered it.")
    ] = False,
) -> None:
    """Write a new X25519 key beside the current one and print the governance command registering it.

    The running gateway keeps working throughout. Once the chain shows the new key, `--finish`
    makes it current and destroys the old key's file.
    """
    from consentledger.cli.common import open_ledger
    from consentledger.crypto.keyfiles import next_keyfile
    from consentledger.gateway.admin.kek_rotation import begin_x25519_rotation, finish_x25519_rotation
    from consentledger.settings import load_settings

    settings = load_settings(config)
    password = password_from_env(settings.password_env)
    ledger = open_ledger(settings.rpc_url, settings.manifest)
    if finish:
        rotation, changed = finish_x25519_rotation(settings, password, ledger)
        state = "is now current; the old key's file is destroyed" if changed else "was already current"
        console.print(f"X25519 key {rotation.current.hex()} (registered on chain) {state}")
        return
    rotation, created = begin_x25519_rotation(settings, password, ledger)
    assert rotation.next is not None
    where = "written to" if created else "already waiting in"
    console.print(f"new X25519 key {rotation.next.hex()} {where} {next_keyfile(rotation.keyfile)}")
    if rotation.registered == rotation.next:
        console.print(f"the chain already registers it: finish with "
                      f"`consentledger keys rotate-x25519 --config {config} --finish`")
        return
    console.print("the running gateway keeps working: it takes up the new key when a release is wrapped for it")
    console.print("have governance register it (an admin proposes, with --keystore FILE or --dev-account N; "
                  "others approve with `consentledger org approve ID`):")
    console.print(f"  {rotation.set_keys_command()}")
    console.print(f"then: consentledger keys rotate-x25519 --config {config} --finish")


@app.command("rotate-signer")
def rotate_signer(
    config: ConfigOption = Path("agency.toml"),
    finish: Annotated[
        bool, typer.Option("--finish", help="Make the new keystore current once governance has rotated to it.")
    ] = False,
) -> None:
    """Write a new signer keystore beside the current one and print the governance command moving the member to it.

    After governance ran it, `--finish` makes the new keystore current (the old one is destroyed);
    restart the gateway: it signs with the new key and takes over the old key's records. On a chain
    that charges gas, fund the new address first (the command is printed).
    """
    from consentledger.cli.common import open_ledger
    from consentledger.cli.funding import print_funding
    from consentledger.crypto.keyfiles import next_keyfile
    from consentledger.gateway.admin.signer_rotation import begin_signer_rotation, finish_signer_rotation
    from consentledger.settings import load_settings

    settings = load_settings(config)
    ledger = open_ledger(settings.rpc_url, settings.manifest)
    if finish:
        rotation, changed = finish_signer_rotation(settings, ledger)
        state = "is now current; the old keystore is destroyed" if changed else "was already current"
        console.print(f"signer {rotation.current} {state}; restart the gateway to sign with it")
        return
    rotation, created = begin_signer_rotation(settings, password_from_env(settings.password_env), ledger)
    where = "written to" if created else "already waiting in"
    console.print(f"new signer {rotation.next} {where} {next_keyfile(rotation.keystore)}")
    assert rotation.next is not None
    print_funding(settings.rpc_url, rotation.next)
    if rotation.on_chain == rotation.next:
        console.print(f"the chain already moved to it: finish with "
                      f"`consentledger keys rotate-signer --config {config} --finish`")
        return
    console.print("have governance move the member to it (an admin proposes; others approve with "
                  "`consentledger org approve ID`):")
    console.print(f"  {rotation.rotate_command()}")
    console.print(f"then: consentledger keys rotate-signer --config {config} --finish, and restart the gateway")


class _ProgressPrinter:
    """Prints a KEK rotation's progress: a first line, then at most one line a second, and the last batch."""

    def __init__(self) -> None:
        self._last: float | None = None

    def __call__(self, progress: KekProgress) -> None:
        now = time.monotonic()
        if self._last is None:
            verb = "resuming the rotation of" if progress.resumed else "rotating"
            console.print(f"{verb} KEK {progress.old_id} → {progress.new_id}: "
                          f"{progress.done} of {progress.total} records under the new KEK")
        elif progress.done == progress.total or now - self._last >= 1.0:
            console.print(f"  re-wrapped {progress.done} of {progress.total}")
        else:
            return
        self._last = now
