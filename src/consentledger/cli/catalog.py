"""`consentledger catalog`: propose categories and purposes of the positive list; list them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from consentledger import governance
from consentledger.cli.common import (
    DEFAULT_MANIFEST,
    DEFAULT_RPC,
    DevAccountOption,
    KeystoreOption,
    ManifestOption,
    PasswordEnvOption,
    RpcOption,
    console,
    open_ledger,
    parse_duration,
    parse_time,
    show_time,
    split_list,
)
from consentledger.cli.org import submit
from consentledger.errors import ConfigurationError
from consentledger.types import Sensitivity

app = typer.Typer(help="The data catalog (positive list): categories and purposes.", no_args_is_help=True)


def _sensitivity(text: str) -> Sensitivity:
    try:
        return Sensitivity[text.strip().upper().replace("-", "_")]
    except KeyError:
        raise ConfigurationError(f"unknown sensitivity {text!r} (open, one-time, protected)") from None


def _ids(text: str) -> list[int]:
    try:
        return [int(item) for item in split_list(text)]
    except ValueError:
        raise ConfigurationError(f"purposes must be numeric ids, got {text!r}") from None


@app.command("propose-category")
def propose_category(
    id: Annotated[int, typer.Option("--id", help="Category id (1..65535).")],
    name: Annotated[str, typer.Option(help="Category name.")],
    fields: Annotated[str, typer.Option(help="Comma-separated fields that may be collected.")],
    sensitivity: Annotated[str, typer.Option(help="open, one-time or protected.")],
    retention: Annotated[str, typer.Option(help="How long records are kept: 3600, 12h, 30d, 2w.")],
    purposes: Annotated[str, typer.Option(help="Comma-separated allowed purpose ids.")] = "",
    identifying: Annotated[str, typer.Option(help="Comma-separated identifying fields.")] = "",
    min_aggregate: Annotated[int, typer.Option(help="K: distinct subjects for an anonymous aggregate.")] = 0,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose a new category for the positive list."""
    try:
        proposed = governance.add_category(
            id, name, _sensitivity(sensitivity), parse_duration(retention), split_list(fields),
            split_list(identifying), _ids(purposes), min_aggregate,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    submit(proposed, rpc, manifest, keystore, password_env, dev_account)


@app.command("propose-purpose")
def propose_purpose(
    id: Annotated[int, typer.Option("--id", help="Purpose id (1..127).")],
    name: Annotated[str, typer.Option(help="Purpose name.")],
    sunset: Annotated[str, typer.Option(help="When the purpose ends: ISO time, unix, or +30d.")] = "",
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose a new purpose of use."""
    proposed = governance.add_purpose(id, name, parse_time(sunset) if sunset else 0)
    submit(proposed, rpc, manifest, keystore, password_env, dev_account)


@app.command("propose-sunset")
def propose_sunset(
    purpose: Annotated[int, typer.Option(help="Purpose id.")],
    at: Annotated[str, typer.Option(help="When it ends: ISO time, unix, +30d; 0 clears the sunset.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose ending a purpose (an emergency) at a time."""
    moment = 0 if at.strip() == "0" else parse_time(at)
    submit(governance.set_purpose_sunset(purpose, moment), rpc, manifest, keystore, password_env, dev_account)


@app.command("propose-purposes")
def propose_purposes(
    category: Annotated[int, typer.Option(help="Category id.")],
    purposes: Annotated[str, typer.Option(help="Comma-separated allowed purpose ids (replaces).")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose replacing the purposes a category may be used for."""
    proposed = governance.set_category_purposes(category, _ids(purposes))
    submit(proposed, rpc, manifest, keystore, password_env, dev_account)


@app.command("list")
def list_catalog(rpc: RpcOption = DEFAULT_RPC, manifest: ManifestOption = DEFAULT_MANIFEST) -> None:
    """List purposes and categories of the positive list."""
    ledger = open_ledger(rpc, manifest)
    purposes = Table("purpose", "name", "sunset", title="purposes")
    for p in ledger.purposes():
        purposes.add_row(str(p.id), p.name, show_time(p.sunset))
    console.print(purposes)
    categories = Table(
        "category", "name", "sensitivity", "retention", "purposes", "fields", "identifying", title="categories"
    )
    for c in ledger.categories():
        categories.add_row(
            str(c.id), c.name, c.sensitivity.name.lower().replace("_", "-"), f"{c.retention // 86400}d"
            if c.retention % 86400 == 0 else f"{c.retention}s",
            ",".join(map(str, c.allowed_purposes)) or "-", ",".join(c.fields), ",".join(c.identifying_fields) or "-",
        )
    console.print(categories)
