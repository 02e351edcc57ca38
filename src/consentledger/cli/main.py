"""The `consentledger` command: one typer app with a sub-app per concern."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from consentledger.cli.lazy import LazyCommand, LazyGroup
from consentledger.errors import ConsentLedgerError


class _Commands(LazyGroup):
    """Every sub-command, imported only when invoked, so `--help` never loads web3 or the gateway."""

    entries = {
        "chain": LazyCommand(
            "consentledger.cli.chain:app",
            "Run a local development chain (ganache or anvil) with funded dev accounts; fund an account.",
        ),
        "keys": LazyCommand(
            "consentledger.cli.keys:app",
            "Create and inspect signer keystores; rotate an agency's KEK and X25519 key.",
        ),
        "deploy": LazyCommand(
            "consentledger.cli.deploy:deploy",
            "Deploy Consortium and AccessLedger, founded by ADMINS with an M-of-N THRESHOLD.",
        ),
        "org": LazyCommand(
            "consentledger.cli.org:app", "Member organisations: propose changes, approve them, list members."
        ),
        "catalog": LazyCommand(
            "consentledger.cli.catalog:app", "The data catalog (positive list): categories and purposes."
        ),
        "mandate": LazyCommand(
            "consentledger.cli.mandate:app", "Statutory mandates: a legal basis beside consent, granted by governance."
        ),
        "override-policy": LazyCommand(
            "consentledger.cli.overrides:policy_app",
            "The emergency override policy: which purposes, how soon each override is reviewed.",
        ),
        "override": LazyCommand(
            "consentledger.cli.overrides:app",
            "Emergency overrides: list them with their review state; an auditor reviews one.",
        ),
        "agency": LazyCommand(
            "consentledger.cli.gateway:agency_app", "Set up an agency: keys, gateway configuration, clients."
        ),
        "gateway": LazyCommand("consentledger.cli.gateway:gateway_app", "Run an agency gateway."),
        "record": LazyCommand(
            "consentledger.cli.record:app",
            "Records held by this organisation's gateway: store, look up; a data subject attests one.",
        ),
        "consent": LazyCommand(
            "consentledger.cli.requests:consent_app", "Consents: a data subject grants or revokes, a gateway relays."
        ),
        "subject": LazyCommand(
            "consentledger.cli.requests:subject_app",
            "A data subject's requests: live consents, erasure, history, receipts.",
        ),
        "access": LazyCommand(
            "consentledger.cli.access:app", "Access records for a purpose, under the subjects' consents."
        ),
        "index": LazyCommand(
            "consentledger.cli.audit:index",
            "Index the deployment's events into the audit database (resumes where the last run stopped).",
        ),
        "audit": LazyCommand(
            "consentledger.cli.audit:app", "Audit: trace who accessed what, verify the chain of responsibility."
        ),
        "receipt": LazyCommand(
            "consentledger.cli.receipt:app",
            "Offline access receipts: take one from the chain, verify one with no node.",
        ),
        "network": LazyCommand("consentledger.cli.network:app", "Permissioned networks beyond one machine."),
    }


app = typer.Typer(
    name="consentledger",
    help="Consent-based, traceable sharing of personal records on a permissioned ledger.",
    cls=_Commands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    # A callback makes typer build a group (of lazy commands) although nothing is registered on it.
    pass


def run() -> None:
    """Entry point: run the app, turning our errors into one readable line and an exit code."""
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
