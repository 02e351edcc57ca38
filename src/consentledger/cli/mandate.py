"""`consentledger mandate`: propose and revoke statutory mandates; list them, show one, check its legal text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    parse_time,
    show_time,
    split_list,
)
from consentledger.cli.consent import print_json
from consentledger.cli.org import submit
from consentledger.errors import (
    ConfigurationError,
    ContractRevertError,
    IntegrityError,
    NotFoundError,
    PayloadValidationError,
)
from consentledger.legal_bases import Directory, check_mandate, legal_text_hash, mandate_state, read_directory
from consentledger.types import Mandate

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

app = typer.Typer(help="Statutory mandates: a legal basis beside consent, granted by governance.",
                  no_args_is_help=True)

MandateArgument = Annotated[int, typer.Argument(min=1, help="Mandate id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _mandate(ledger: Ledger, mandate_id: int) -> Mandate:
    """Return mandate `mandate_id`; NotFoundError naming how many there are if it does not exist."""
    try:
        return ledger.mandate(mandate_id)
    except ContractRevertError as exc:
        if exc.rule != "LegalBasesUnknownMandate":
            raise
        raise NotFoundError(f"no mandate {mandate_id}: {len(ledger.mandates())} granted so far") from None


def _text_hash(legal_text: Path | None, legal_text_hash_hex: str | None) -> bytes:
    if (legal_text is None) == (legal_text_hash_hex is None):
        raise ConfigurationError("give either --legal-text FILE or --legal-text-hash 0x… (64 hex digits)")
    if legal_text is not None:
        return legal_text_hash(_read(legal_text))
    assert legal_text_hash_hex is not None
    try:
        digest = bytes.fromhex(legal_text_hash_hex.removeprefix("0x"))
    except ValueError:
        digest = b""
    if len(digest) != 32 or not any(digest):
        raise ConfigurationError(f"--legal-text-hash must be a non-zero 32-byte hash (0x + 64 hex digits), "
                                 f"got {legal_text_hash_hex!r}")
    return digest


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the legal text {path}: {exc.strerror or exc}") from None


@app.command("propose")
def propose(
    institution: Annotated[str, typer.Option(help="The institution (an active requester): address or member name.")],
    purpose: Annotated[str, typer.Option(help="The purpose: id or name.")],
    categories: Annotated[str, typer.Option(help="Comma-separated categories: ids or names.")],
    valid_until: Annotated[str, typer.Option(help="When it ends: ISO date/time (UTC), unix seconds, or +30d.")],
    legal_uri: Annotated[str, typer.Option(help="Where the legal text is published.")],
    legal_text: Annotated[
        Path | None, typer.Option(help="The legal text; its keccak256 goes on chain.", show_default=False)
    ] = None,
    legal_text_hash_hex: Annotated[
        str | None, typer.Option("--legal-text-hash", help="The legal text's keccak256, instead of --legal-text.")
    ] = None,
    not_identified: Annotated[
        bool, typer.Option("--not-identified", help="Identifying fields are withheld under this mandate.")
    ] = False,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose granting an institution a statutory mandate for categories and a purpose until a date.

    What the Consortium would refuse when the proposal runs (an institution that is no active
    requester, a category not allowing the purpose, an end in the past or after the purpose's
    sunset) is refused here, before anything is sent.
    """
    text_hash = _text_hash(legal_text, legal_text_hash_hex)
    until = parse_time(valid_until)
    ledger = open_ledger(rpc, manifest)
    directory = read_directory(ledger)
    member = directory.member(institution)
    chosen = directory.purpose(purpose)
    covered = directory.categories(split_list(categories))
    check_mandate(directory, member, chosen, covered, until)
    proposed = governance.grant_mandate(
        member.address, chosen.id, [c.id for c in covered], until, text_hash, legal_uri, identified=not not_identified
    )
    submit(proposed, rpc, manifest, keystore, password_env, dev_account, ledger=ledger)


@app.command("revoke")
def revoke(
    mandate: MandateArgument,
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Propose revoking a mandate (final)."""
    ledger = open_ledger(rpc, manifest)
    if _mandate(ledger, mandate).revoked:
        raise PayloadValidationError(f"mandate {mandate} was revoked already (LegalBasesMandateRevoked)")
    submit(governance.revoke_mandate(mandate), rpc, manifest, keystore, password_env, dev_account, ledger=ledger)


def _as_json(mandate: Mandate, directory: Directory) -> dict[str, Any]:
    purpose = directory.catalog.purpose(mandate.purpose)
    return {
        "id": mandate.id,
        "institution": mandate.institution,
        "institution_name": directory.name_of(mandate.institution),
        "purpose": mandate.purpose,
        "purpose_name": purpose.name if purpose else None,
        "categories": list(mandate.categories),
        "category_names": [c.name if c else None for c in map(directory.catalog.category, mandate.categories)],
        "valid_until": mandate.valid_until,
        "valid_until_at": show_time(mandate.valid_until),
        "identified": mandate.identified,
        "revoked": mandate.revoked,
        "state": mandate_state(mandate, purpose, directory.now),
        "legal_text_hash": "0x" + mandate.legal_text_hash.hex(),
        "legal_text_uri": mandate.legal_text_uri,
    }


@app.command("list")
def list_mandates(
    json_output: JsonOption = False, rpc: RpcOption = DEFAULT_RPC, manifest: ManifestOption = DEFAULT_MANIFEST
) -> None:
    """List every mandate: institution, purpose, categories, end, scope and state (by the chain's clock)."""
    ledger = open_ledger(rpc, manifest)
    directory = read_directory(ledger)
    shown = [_as_json(m, directory) for m in ledger.mandates()]
    if json_output:
        print_json(shown)
        return
    table = Table("id", "institution", "purpose", "categories", "valid until", "identified", "state")
    for m in shown:
        table.add_row(
            str(m["id"]), m["institution_name"], m["purpose_name"] or str(m["purpose"]),
            ",".join(name or str(i) for i, name in zip(m["categories"], m["category_names"], strict=True)),
            m["valid_until_at"], "yes" if m["identified"] else "no", m["state"],
        )
    console.print(table)


@app.command("show")
def show(
    mandate: MandateArgument, json_output: JsonOption = False, rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Show one mandate in full, with its legal text's hash and URI."""
    ledger = open_ledger(rpc, manifest)
    shown = _as_json(_mandate(ledger, mandate), read_directory(ledger))
    if json_output:
        print_json(shown)
        return
    names = ",".join(name or str(i) for i, name in zip(shown["categories"], shown["category_names"], strict=True))
    for label, value in (
        ("mandate", str(shown["id"])),
        ("institution", f"{shown['institution_name']} ({shown['institution']})"),
        ("purpose", f"{shown['purpose']} {shown['purpose_name'] or ''}".rstrip()),
        ("categories", names),
        ("valid until", shown["valid_until_at"]),
        ("identified", "yes" if shown["identified"] else "no (identifying fields withheld)"),
        ("state", shown["state"]),
        ("legal text", shown["legal_text_hash"]),
        ("published at", shown["legal_text_uri"] or "-"),
    ):
        console.print(f"{label:<13} {value}")


@app.command("check-text")
def check_text(
    mandate: MandateArgument,
    file: Annotated[Path, typer.Argument(help="A copy of the legal text.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Check a file is the legal text a mandate cites (its keccak256 is on chain); exit 9 if it is not."""
    cited = _mandate(open_ledger(rpc, manifest), mandate).legal_text_hash
    digest = legal_text_hash(_read(file))
    if digest != cited:
        raise IntegrityError(f"{file} is not the legal text of mandate {mandate}: it hashes to 0x{digest.hex()}, "
                             f"the mandate cites 0x{cited.hex()}")
    console.print(f"{file} is the legal text of mandate {mandate} (keccak256 0x{digest.hex()})")
