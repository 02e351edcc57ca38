"""Options and helpers shared by the CLI commands: RPC, manifest, signer, output."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from consentledger.crypto.keys import DEFAULT_PASSWORD_ENV
from consentledger.errors import ConfigurationError

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

# Piped output (scripts, tests, logs) gets a wide console so tables never cut an address.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)

RpcOption = Annotated[
    str, typer.Option("--rpc", envvar="CONSENTLEDGER_RPC", help="Ethereum JSON-RPC URL (ganache, anvil, Besu, ...).")
]
ManifestOption = Annotated[
    Path,
    typer.Option("--manifest", envvar="CONSENTLEDGER_MANIFEST", help="Deployment manifest written by `deploy`."),
]
KeystoreOption = Annotated[
    Path | None, typer.Option("--keystore", help="Signer keystore (eth-account v3 JSON).", show_default=False)
]
PasswordEnvOption = Annotated[
    str, typer.Option("--password-env", help="Environment variable holding the keystore password.")
]
DevAccountOption = Annotated[
    int | None,
    typer.Option("--dev-account", help="Use local dev account N (test chains only) instead of a keystore."),
]
DEFAULT_RPC = "http://127.0.0.1:8545"
DEFAULT_MANIFEST = Path("deployment.json")


def signer(keystore: Path | None, password_env: str, dev_account: int | None) -> LocalAccount:
    """Return the signing account from a keystore or a dev account index."""
    return load_signer(keystore, password_env, dev_account)


def load_signer(
    keystore: Path | None,
    password_env: str = DEFAULT_PASSWORD_ENV,
    dev_index: int | None = None,
) -> LocalAccount:
    """Return the signer a command was told to use: a keystore file, or a dev account index.

    Dev accounts (`--dev-account N`) have publicly known keys: use them on local test chains only.
    Exactly one of `keystore` and `dev_index` must be given.
    """
    if keystore is not None and dev_index is not None:
        raise ConfigurationError("give either --keystore or --dev-account, not both")
    if keystore is not None:
        from consentledger.crypto.keys import load_account, password_from_env

        return load_account(keystore, password_from_env(password_env))
    if dev_index is not None:
        if dev_index < 0:
            raise ConfigurationError(f"--dev-account must be >= 0, got {dev_index}")
        from consentledger.chain.accounts import dev_account

        return dev_account(dev_index)
    raise ConfigurationError(
        f"no signer: pass --keystore FILE (password in ${password_env}) "
        "or, on a local test chain, --dev-account N"
    )


def open_ledger(rpc: str, manifest: Path) -> Ledger:
    """Connect to `rpc`, load `manifest` and return a verified Ledger."""
    from consentledger.chain.connect import connect
    from consentledger.chain.ledger import Ledger
    from consentledger.chain.manifest import Deployment

    deployment = Deployment.load(manifest)
    ledger = Ledger(connect(rpc), deployment)
    ledger.verify()
    return ledger


_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Return seconds for "3600", "90m", "12h", "30d" or "2w"."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ConfigurationError(f"bad duration {text!r}: use e.g. 3600, 90m, 12h, 30d, 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str) -> int:
    """Return a unix time for an ISO-8601 date/time (UTC if no zone), a unix number, or "+DURATION"."""
    value = text.strip()
    if value.startswith("+"):
        return int(datetime.now(UTC).timestamp()) + parse_duration(value[1:])
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"bad time {text!r}: use ISO-8601, unix seconds, or +30d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def split_list(text: str) -> list[str]:
    """Return the non-empty comma-separated items of `text`."""
    return [item.strip() for item in text.split(",") if item.strip()]


def show_time(unix: int) -> str:
    """Return a unix time as ISO-8601 UTC, or "-" for 0."""
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds") if unix else "-"
