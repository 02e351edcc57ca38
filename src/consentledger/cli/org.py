"""`consentledger org`: propose, approve and list membership changes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    show_time,
    signer,
)
from consentledger.errors import ConfigurationError
from consentledger.governance import ProposedAction
from consentledger.types import Action, Role

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

app = typer.Typer(help="Member organisations: propose changes, approve them, list members.", no_args_is_help=True)
propose_app = typer.Typer(help="Propose a membership change (needs M-of-N admin approvals).", no_args_is_help=True)
app.add_typer(propose_app, name="propose")

AccountOption = Annotated[str, typer.Option("--account", help="The member's signer address.")]


def submit(
    proposed: ProposedAction,
    rpc: str,
    manifest: Path,
    keystore: Path | None,
    password_env: str,
    dev_account: int | None,
    *,
    ledger: Ledger | None = None,
) -> None:
    """Send a proposal and report whether it already ran (threshold 1) or waits for approvals.

    `ledger` is the deployment already opened at `rpc` and `manifest`, if the caller has it.
    """
    ledger = ledger or open_ledger(rpc, manifest)
    sender = ledger.sender(signer(keystore, password_env, dev_account))
    proposal_id, executed = ledger.propose(sender, proposed)
    state = "executed" if executed else f"waiting for approvals (1 of {ledger.threshold()})"
    console.print(f"proposal {proposal_id}: {proposed.describe()} — {state}")


def _roles(text: str) -> Role:
    try:
        return Role.parse(text)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ConfigurationError("--x25519 must be hex") from None
    if len(key) not in (0, 32):
        raise ConfigurationError("--x25519 must be a 32-byte public key (64 hex digits)")
    return key


@propose_app.command("admit")
def propose_admit(
    account: AccountOption,
    roles: Annotated[str, typer.Option(help="Comma-separated: admin, custodian, requester, auditor, emergency.")],
    name: Annotated[str, typer.Option(help="The organisation's name.")],
    x25519: Annotated[str, typer.Option("--x25519", help="X25519 public key (hex) for key exchange.")] = "",
    gateway: Annotated[str, typer.Option(help="The organisation's gateway URL.")] = "",
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose admitting a new member organisation."""
    proposed = governance.admit_member(account, _roles(roles), name, _key(x25519), gateway)
    submit(proposed, rpc, manifest, keystore, password_env, dev_account)


def _status_command(action: Action, verb: str) -> None:
    def command(
        account: AccountOption,
        rpc: RpcOption = DEFAULT_RPC,
        manifest: ManifestOption = DEFAULT_MANIFEST,
        keystore: KeystoreOption = None,
        password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
        dev_account: DevAccountOption = None,
    ) -> None:
        build = {
            Action.SUSPEND_MEMBER: governance.suspend_member,
            Action.REINSTATE_MEMBER: governance.reinstate_member,
            Action.REVOKE_MEMBER: governance.revoke_member,
        }[action]
        submit(build(account), rpc, manifest, keystore, password_env, dev_account)

    command.__doc__ = f"Propose to {verb} a member."
    propose_app.command(verb)(command)


_status_command(Action.SUSPEND_MEMBER, "suspend")
_status_command(Action.REINSTATE_MEMBER, "reinstate")
_status_command(Action.REVOKE_MEMBER, "revoke")


@propose_app.command("set-roles")
def propose_set_roles(
    account: AccountOption,
    roles: Annotated[str, typer.Option(help="Comma-separated: admin, custodian, requester, auditor, emergency.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose replacing a member's roles."""
    submit(governance.set_roles(account, _roles(roles)), rpc, manifest, keystore, password_env, dev_account)


@propose_app.command("set-keys")
def propose_set_keys(
    account: AccountOption,
    x25519: Annotated[str, typer.Option("--x25519", help="New X25519 public key (hex).")],
    gateway: Annotated[str, typer.Option(help="New gateway URL.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose replacing a member's X25519 key and gateway URL."""
    proposed = governance.set_member_keys(account, _key(x25519), gateway)
    submit(proposed, rpc, manifest, keystore, password_env, dev_account)


@propose_app.command("rotate-signer")
def propose_rotate_signer(
    account: AccountOption,
    successor: Annotated[str, typer.Option(help="The member's new signer address (never a member before).")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose moving a member to a new signing key (the old one is revoked; records and consents follow)."""
    submit(governance.rotate_signer(account, successor), rpc, manifest, keystore, password_env, dev_account)


@propose_app.command("set-threshold")
def propose_set_threshold(
    threshold: Annotated[int, typer.Option(help="New number of approvals a proposal needs.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose a new M-of-N threshold."""
    submit(governance.set_threshold(threshold), rpc, manifest, keystore, password_env, dev_account)


@app.command("approve")
def approve(
    proposal: Annotated[int, typer.Argument(help="Proposal id.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Approve a proposal (membership or catalog); it runs when the threshold is reached."""
    ledger = open_ledger(rpc, manifest)
    executed = ledger.approve(ledger.sender(signer(keystore, password_env, dev_account)), proposal)
    current = ledger.proposal(proposal)
    state = "executed" if executed else f"{current.approvals} of {ledger.threshold()} approvals"
    console.print(f"proposal {proposal}: {state}")


@app.command("execute")
def execute(
    proposal: Annotated[int, typer.Argument(help="Proposal id.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Run a proposal that already has enough approvals (e.g. after the threshold was lowered)."""
    ledger = open_ledger(rpc, manifest)
    ledger.execute(ledger.sender(signer(keystore, password_env, dev_account)), proposal)
    console.print(f"proposal {proposal}: executed")


@app.command("list")
def list_members(rpc: RpcOption = DEFAULT_RPC, manifest: ManifestOption = DEFAULT_MANIFEST) -> None:
    """List member organisations with roles, status and gateway."""
    ledger = open_ledger(rpc, manifest)
    table = Table("address", "name", "roles", "status", "since", "gateway", "x25519")
    for m in ledger.members():
        key = m.x25519_key.hex()[:16] + "…" if any(m.x25519_key) else "-"
        table.add_row(
            m.address, m.name or "-", m.roles.label(), m.status.name.lower(), show_time(m.since),
            m.gateway_url or "-", key,
        )
    console.print(table)
    console.print(f"threshold: {ledger.threshold()} approvals")


@app.command("proposals")
def list_proposals(rpc: RpcOption = DEFAULT_RPC, manifest: ManifestOption = DEFAULT_MANIFEST) -> None:
    """List governance proposals and their approvals."""
    ledger = open_ledger(rpc, manifest)
    threshold = ledger.threshold()
    table = Table("id", "action", "approvals", "state", "deadline", "proposer")
    for p in ledger.proposals():
        state = "executed" if p.executed else "open"
        described = ProposedAction(p.action, p.payload).describe()
        table.add_row(
            str(p.id), described, f"{p.approvals}/{threshold}", state, show_time(p.deadline), p.proposer
        )
    console.print(table)
