"""`consentledger receipt`: take an access's offline receipt from the chain; verify one with no node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from consentledger.cli.common import DEFAULT_MANIFEST, DEFAULT_RPC, ManifestOption, RpcOption, console
from consentledger.errors import ConfigurationError, ReceiptInvalidError

if TYPE_CHECKING:
    from consentledger.receipts.receipt import Receipt

app = typer.Typer(help="Offline access receipts: take one from the chain, verify one with no node.",
                  no_args_is_help=True)


@app.command("get")
def get(
    record: Annotated[str, typer.Option(help="Record id (0x + 64 hex).")],
    seq: Annotated[int, typer.Option(min=1, help="The access's seq in the record's chain.")],
    out: Annotated[Path, typer.Option(help="Write the receipt (JSON) here.")],
    rpc: RpcOption = DEFAULT_RPC,
    manifest: ManifestOption = DEFAULT_MANIFEST,
) -> None:
    """Write the receipt of access SEQ to RECORD: its entries, block header and trie proofs at its block."""
    from consentledger.cli.common import open_ledger
    from consentledger.client import parse_record_id
    from consentledger.receipts.build import build_receipt

    receipt = build_receipt(open_ledger(rpc, manifest), bytes(parse_record_id(record)), seq)
    out.write_text(receipt.dumps(), encoding="utf-8")
    console.print(f"receipt of access {seq} (block {receipt.block_number}, hash 0x{receipt.block_hash.hex()}) "
                  f"written to {out}")


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="A receipt written by `receipt get`.")],
    block_hash: Annotated[str | None, typer.Option(help="Trusted hash of the receipt's block (0x + 64 hex).")] = None,
    state_root: Annotated[str | None, typer.Option(help="Trusted state root of the receipt's block.")] = None,
    ledger: Annotated[str | None, typer.Option(help="The AccessLedger address the receipt must be of.")] = None,
    validators: Annotated[str | None, typer.Option(
        help="QBFT: trusted validators (A,B,C); the block hash is checked against their commit seals.")] = None,
    genesis: Annotated[Path | None, typer.Option(
        help="QBFT: take the trusted validators from this genesis file's extraData.")] = None,
) -> None:
    """Check a receipt with no node; print the verdict. Exit 0 if it proves its access, 9 if not."""
    from consentledger.receipts.receipt import Receipt, ReceiptFormatError
    from consentledger.receipts.verify import verify_receipt

    if block_hash is not None and state_root is not None:
        raise ConfigurationError("give either --block-hash or --state-root, not both")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read receipt {file}: {exc.strerror}") from None
    try:
        receipt = Receipt.loads(text)
    except ReceiptFormatError as exc:
        raise ReceiptInvalidError(f"invalid: {file} is not a receipt: {exc}") from None
    if validators is not None or genesis is not None:
        if block_hash is not None or state_root is not None:
            raise ConfigurationError("give trusted validators (--validators, --genesis) or a trusted hash, not both")
        _verify_sealed(receipt, _trusted_validators(validators, genesis), ledger)
        return
    verdict = verify_receipt(receipt, block_hash=_word(block_hash, "--block-hash"),
                             state_root=_word(state_root, "--state-root"), ledger=ledger)
    if not verdict.valid:
        raise ReceiptInvalidError(f"invalid: {verdict.reason}")
    console.print(f"valid: {verdict.reason}")


def _word(text: str | None, option: str) -> bytes | None:
    if text is None:
        return None
    try:
        value = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ConfigurationError(f"{option} is 32 bytes (64 hex digits), got {text!r}")
    return value


def _verify_sealed(receipt: Receipt, validators: tuple[str, ...], ledger: str | None) -> None:
    from consentledger.receipts.verify import verify_sealed_receipt

    verdict = verify_sealed_receipt(receipt, validators=validators, ledger=ledger)
    if not verdict.valid:
        raise ReceiptInvalidError(f"invalid: {verdict.reason}")
    console.print(f"valid: {verdict.reason}")


def _trusted_validators(validators: str | None, genesis: Path | None) -> tuple[str, ...]:
    from consentledger.receipts.qbft import QbftExtraDataError, parse_validators, validators_from_genesis

    if validators is not None and genesis is not None:
        raise ConfigurationError("give either --validators or --genesis, not both")
    try:
        if validators is not None:
            return parse_validators(validators.split(","))
        assert genesis is not None
        try:
            data = json.loads(genesis.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read genesis file {genesis}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigurationError(f"genesis file {genesis} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigurationError(f"genesis file {genesis} is not a JSON object")
        return validators_from_genesis(data)
    except QbftExtraDataError as exc:
        raise ConfigurationError(f"{'--validators' if validators is not None else genesis}: {exc}") from None
