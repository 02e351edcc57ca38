"""Check an access receipt offline against a trusted block hash or state root: a verdict with its reason."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import rlp
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from consentledger.receipts.header import HeaderError, decode_header
from consentledger.receipts.mpt import ProofError, verify_proof
from consentledger.receipts.qbft import check_seals
from consentledger.receipts.receipt import Link, Receipt, head_slot


@dataclass(frozen=True)
class Verdict:
    """Whether a receipt holds, and why not (or what it was anchored to)."""

    valid: bool
    reason: str
    anchored: bool = False
    """Whether it was checked against a trusted block hash or state root (not only the receipt's own)."""


def link(previous: bytes, entry: Link) -> bytes:
    """Return the head after `entry`, as AccessLedger._append computes it."""
    return keccak(encode(
        ["bytes32", "uint24", "address", "bytes32", "uint8", "uint8", "bytes32", "bool", "uint256"],
        [previous, entry.seq, entry.requester, entry.actor, entry.purpose, int(entry.basis), entry.consent,
         entry.identified, entry.timestamp],
    ))


def verify_receipt(
    receipt: Receipt, *, block_hash: bytes | None = None, state_root: bytes | None = None, ledger: str | None = None
) -> Verdict:
    """Return whether `receipt` proves its access, trusting `block_hash` or `state_root` (or neither: unanchored).

    Steps: (1) keccak256 of the header RLP is the receipt's block hash, which equals the trusted one,
    and the header's number is the receipt's; (2) the account proof under the header's (or the
    trusted) state root gives the ledger's account, whose storage root (3) the storage proof of
    slot keccak256(record . 7) gives the receipt's head under; (4) the entries are consecutive from
    `seq`, carry the block's timestamp, and hashed onto `previous` give that head.
    """
    try:
        header = decode_header(receipt.header)
    except HeaderError as exc:
        return Verdict(False, f"block header: {exc}")
    if header.hash != receipt.block_hash:
        return Verdict(False, f"the header hashes to 0x{header.hash.hex()}, not the receipt's block hash "
                              f"0x{receipt.block_hash.hex()}")
    if header.number != receipt.block_number:
        return Verdict(False, f"the header is of block {header.number}, not block {receipt.block_number}")
    if block_hash is not None and receipt.block_hash != block_hash:
        return Verdict(False, f"block hash 0x{receipt.block_hash.hex()} is not the trusted 0x{block_hash.hex()}")
    if state_root is not None and header.state_root != state_root:
        return Verdict(False, f"state root 0x{header.state_root.hex()} is not the trusted 0x{state_root.hex()}")
    if ledger is not None and ledger.lower() != receipt.ledger.lower():
        return Verdict(False, f"the receipt is for ledger {receipt.ledger}, not {ledger}")

    try:
        account = verify_proof(header.state_root, keccak(bytes.fromhex(receipt.ledger[2:])), receipt.account_proof)
    except ProofError as exc:
        return Verdict(False, f"account proof: {exc}")
    if account is None:
        return Verdict(False, f"account proof: no account {receipt.ledger} in the block's state")
    try:
        fields = rlp.decode(account)
    except rlp.DecodingError:
        fields = None
    if not isinstance(fields, list) or len(fields) != 4 or not isinstance(fields[2], bytes) or len(fields[2]) != 32:
        return Verdict(False, "account proof: the value is not an account [nonce, balance, storageRoot, codeHash]")
    storage_root = fields[2]

    try:
        stored = verify_proof(storage_root, keccak(head_slot(receipt.record)), receipt.storage_proof)
    except ProofError as exc:
        return Verdict(False, f"storage proof: {exc}")
    if stored is None:
        return Verdict(False, "storage proof: the record has no head in the ledger's storage at this block")
    try:
        value = rlp.decode(stored)
    except rlp.DecodingError:
        return Verdict(False, "storage proof: the stored value is not RLP")
    if not isinstance(value, bytes) or len(value) > 32:
        return Verdict(False, "storage proof: the stored value is not a word")
    proven = value.rjust(32, b"\0")
    if proven != receipt.head:
        return Verdict(False, f"storage proof: the record's head at block {header.number} is 0x{proven.hex()}, "
                              f"not the receipt's head 0x{receipt.head.hex()}")

    head = receipt.previous
    for offset, entry in enumerate(receipt.links):
        if entry.seq != receipt.seq + offset:
            return Verdict(False, f"entry {offset} has seq {entry.seq}, not {receipt.seq + offset}")
        if entry.timestamp != header.timestamp:
            return Verdict(False, f"entry {entry.seq} has timestamp {entry.timestamp}, not its block's "
                                  f"{header.timestamp}")
        head = link(head, entry)
    if head != receipt.head:
        return Verdict(False, f"the entries hash to 0x{head.hex()}, not the proven head 0x{receipt.head.hex()}")
    anchored = block_hash is not None or state_root is not None
    where = f"block {header.number} (0x{receipt.block_hash.hex()})"
    trust = "trusted " if anchored else "the receipt's own (unanchored: pass a trusted block hash) "
    return Verdict(True, f"access {receipt.seq} to record 0x{receipt.record.hex()} is in its chain at {trust}{where}",
                   anchored)


def verify_sealed_receipt(receipt: Receipt, *, validators: Collection[str], ledger: str | None = None) -> Verdict:
    """Return whether a QBFT block's receipt proves its access, trusting only the block's validator set.

    The sealed header's commit seals must hold for `validators` (`qbft.check_seals`); the on-chain
    hash they vouch for is then the trusted block hash of `verify_receipt`.
    """
    if receipt.sealed_header is None:
        return Verdict(False, "the receipt has no sealed header (not of a QBFT block): give a trusted block hash")
    seals = check_seals(receipt.sealed_header, validators)
    if not seals.valid:
        return Verdict(False, seals.reason)
    verdict = verify_receipt(receipt, block_hash=seals.block_hash, ledger=ledger)
    if not verdict.valid:
        return verdict
    count = len({to_checksum_address(v) for v in validators})
    return Verdict(True, f"{verdict.reason}, sealed by {len(seals.signers)} of its {count} trusted validators", True)
