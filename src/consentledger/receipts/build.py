"""Build the offline receipt of an access from the node: its entries, block header and trie proofs."""

from __future__ import annotations

from operator import attrgetter

from eth_utils import keccak

from consentledger.chain.access_logs import as_bytes
from consentledger.chain.ledger import Ledger
from consentledger.chain.proofs import block_fields, storage_proof
from consentledger.errors import ChainUnavailableError, NotFoundError
from consentledger.receipts import qbft
from consentledger.receipts.header import HeaderError, encode_header
from consentledger.receipts.receipt import Link, Receipt, head_slot
from consentledger.settings import LOGS_BLOCK_RANGE
from consentledger.types import AccessEntry


def build_receipt(
    ledger: Ledger, record: bytes, seq: int, *, block: int | None = None, log_range: int = LOGS_BLOCK_RANGE,
) -> Receipt:
    """Return the receipt of access `seq` to `record`, taken at the access's own block.

    `block`, when the caller knows the access's block (its answer names it), spares the search for
    it: back from the head, `log_range` blocks per `eth_getLogs` (a node's limit: Besu's
    `--rpc-max-logs-range`). Then the record's entries in that block and its head before it are read.
    Raises NotFoundError if there is no such access; ChainUnavailableError if the node's header or
    proof does not match what it reported (a header not hashing to its block hash, another head).
    A QBFT block's header hashes to its hash without its commit seals: the receipt then keeps both.
    """
    if block is None:
        block = _block_of(ledger, record, seq, log_range)
    in_block = sorted(ledger.access_entries(block, block, records=[record]), key=attrgetter("seq"))
    entry = next((e for e in in_block if e.seq == seq), None)
    if entry is None:
        raise NotFoundError(f"record 0x{bytes(record).hex()} has no access {seq} in block {block}")
    earlier = [e for e in in_block if e.seq < seq]
    previous = earlier[-1].head if earlier else ledger.head(record, block=block - 1)
    links = [e for e in in_block if e.seq >= seq]
    head = links[-1].head

    fields = block_fields(ledger, entry.block_number)
    header = encode_header(fields)
    block_hash = as_bytes(fields["hash"])
    sealed_header = None
    if keccak(header) != block_hash:
        header, sealed_header = _qbft_onchain(header, block_hash)
    if keccak(header) != block_hash:
        raise ChainUnavailableError(f"block {entry.block_number}'s header does not hash to its hash "
                                    "(neither as encoded nor as a QBFT header without its seals)")
    proof = storage_proof(ledger, ledger.access.address, head_slot(record), entry.block_number)
    if proof.value.to_bytes(32, "big") != head:
        raise ChainUnavailableError(f"the ledger's stored head of the record at block {entry.block_number} "
                                    "is not the last entry's head")
    return Receipt(
        chain_id=ledger.deployment.chain_id, ledger=ledger.access.address, record=bytes(record), seq=seq,
        previous=previous, links=tuple(_link(e) for e in links), head=head, block_number=entry.block_number,
        block_hash=block_hash, header=header, account_proof=proof.account_proof, storage_proof=proof.storage_proof,
        sealed_header=sealed_header,
    )


def _block_of(ledger: Ledger, record: bytes, seq: int, log_range: int) -> int:
    """Return the block of access `seq` to `record`, searched back from the head `log_range` blocks at a time."""
    first, end = ledger.deployment.deploy_block, ledger.block_number()
    while end >= first:
        start = max(end - log_range + 1, first)
        found = ledger.access_entries(start, end, records=[record], seqs=[seq])
        if found:
            return found[0].block_number
        end = start - 1
    raise NotFoundError(f"record 0x{bytes(record).hex()} has no access {seq}")


def _qbft_onchain(header: bytes, block_hash: bytes) -> tuple[bytes, bytes | None]:
    """Return (on-chain header, sealed header) if `header` is of a QBFT block of `block_hash`, else (header, None)."""
    try:
        onchain = qbft.onchain_header(header)
    except HeaderError:
        return header, None
    return (onchain, header) if keccak(onchain) == block_hash else (header, None)


def _link(entry: AccessEntry) -> Link:
    return Link(seq=entry.seq, requester=entry.requester, actor=bytes(entry.actor), purpose=entry.purpose,
                basis=entry.basis, consent=bytes(entry.consent), identified=entry.identified, timestamp=entry.timestamp)
