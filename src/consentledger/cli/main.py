"""The `consentledger` command: one typer app with a sub-app per concern."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from consentledger.errors import ConsentLedgerError

app = typer.Typer(
    name="consentledger",
    help="Consent-based, traceable sharing of personal records on a permissioned ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_subcommands() -> None:
    """Attach every sub-app; imported lazily so `--help` stays fast."""
    from consentledger.cli import (
        access,
        audit,
        catalog,
        chain,
        consent,
        deploy,
        gateway,
        keys,
        network,
        org,
        record,
        requests,
        subject,
    )

    app.add_typer(chain.app, name="chain")
    app.add_typer(keys.app, name="keys")
    app.add_typer(org.app, name="org")
    app.add_typer(catalog.app, name="catalog")
    app.command("deploy")(deploy.deploy)
    app.add_typer(gateway.agency_app, name="agency")
    app.add_typer(gateway.gateway_app, name="gateway")
    app.add_typer(record.app, name="record")
    requests.register(consent.app, subject.app)
    app.add_typer(consent.app, name="consent")
    app.add_typer(subject.app, name="subject")
    app.add_typer(access.app, name="access")
    app.command("index")(audit.index)
    app.add_typer(audit.app, name="audit")
    app.add_typer(network.app, name="network")


def run() -> None:
    """Entry point: run the app, turning our errors into one readable line and an exit code."""
    _register_subcommands()
    try:
        result = app(standalone_mode=False)
    except ConsentLedgerError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False
        )
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        # Usage errors (typer's vendored click.ClickException): click's own message and code (2).
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        Console(stderr=True).print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    # Without standalone mode a command's return value (or an Exit's code) comes back here.
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)
