"""Merkle-Patricia trie proofs (as `eth_getProof` returns them), checked with no node: the proven value or None."""

from __future__ import annotations

from collections.abc import Sequence

import rlp
from eth_utils import keccak

EMPTY_TRIE_ROOT = keccak(rlp.encode(b""))


class ProofError(Exception):
    """Raised when a proof's nodes do not link up from the root to the key (the message says where)."""


def nibbles(key: bytes) -> tuple[int, ...]:
    """Return the key's nibbles, high nibble first."""
    return tuple(n for byte in key for n in (byte >> 4, byte & 0x0F))


def decode_path(encoded: bytes) -> tuple[tuple[int, ...], bool]:
    """Return a hex-prefix encoded path's nibbles and whether it ends in a leaf (flag nibble 2 or 3)."""
    if not encoded:
        raise ProofError("empty hex-prefix path")
    flag = encoded[0] >> 4
    if flag > 3:
        raise ProofError(f"bad hex-prefix flag {flag}")
    path = nibbles(encoded)[1 if flag & 1 else 2:]
    if not flag & 1 and encoded[0] & 0x0F:
        raise ProofError("hex-prefix padding nibble is not zero")
    return path, flag >= 2


def verify_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes | None:
    """Return the value stored under `key` (already hashed, for the secure tries) in the trie of `root`, or None.

    None is a valid proof that no value is stored there. Each node is reached by its parent's
    reference: a 32-byte keccak of the node's RLP (the next node of `proof`) or, for a node whose
    RLP is shorter than 32 bytes, the node itself inline. Raises ProofError if a node does not hash
    to its reference, is not a branch (17 items), extension or leaf (2 items), or nodes are left over.
    """
    path = nibbles(key)
    remaining = list(proof)
    ref: object = root
    depth = 0
    while True:
        if ref == b"":
            value = None
            break
        if isinstance(ref, bytes):
            if len(ref) != 32:
                raise ProofError(f"node {depth}: reference of {len(ref)} bytes is neither a hash nor inline")
            if not remaining:
                if ref == EMPTY_TRIE_ROOT and depth == 0:
                    return None
                raise ProofError(f"node {depth}: the proof ends before the key's path does")
            raw = remaining.pop(0)
            if keccak(raw) != ref:
                raise ProofError(f"node {depth}: its hash {keccak(raw).hex()} is not the reference {ref.hex()}")
            try:
                node = rlp.decode(raw)
            except rlp.DecodingError as exc:
                raise ProofError(f"node {depth}: not RLP ({exc})") from None
            depth += 1
        elif isinstance(ref, list):
            node = ref  # inline: its RLP is shorter than 32 bytes
        else:
            raise ProofError(f"node {depth}: bad reference")
        if not isinstance(node, list):
            raise ProofError(f"node {depth}: not a list")
        if len(node) == 17:
            if not path:
                value = node[16] or None
                break
            ref, path = node[path[0]], path[1:]
        elif len(node) == 2:
            if not isinstance(node[0], bytes):
                raise ProofError(f"node {depth}: path is not bytes")
            part, leaf = decode_path(node[0])
            if leaf:
                value = node[1] if part == path else None
                break
            if path[: len(part)] != part:
                value = None
                break
            ref, path = node[1], path[len(part):]
        else:
            raise ProofError(f"node {depth}: {len(node)} items (a trie node has 17 or 2)")
    if remaining:
        raise ProofError(f"{len(remaining)} proof node(s) left over after the key's path ended")
    if value is not None and not isinstance(value, bytes):
        raise ProofError("the value is not a byte string")
    return value
