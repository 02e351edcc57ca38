"""Merkle-Patricia proof checking on hand-built tries: inline nodes, extensions, absence, broken proofs."""

from __future__ import annotations

import pytest
import rlp
from eth_utils import keccak

from consentledger.receipts.mpt import EMPTY_TRIE_ROOT, ProofError, decode_path, verify_proof

EMPTY_BRANCH: list[object] = [b""] * 17


def _branch(children: dict[int, object], value: bytes = b"") -> list[object]:
    node = list(EMPTY_BRANCH)
    for nibble, child in children.items():
        node[nibble] = child
    node[16] = value
    return node


def test_hex_prefix_paths_decode_with_their_leaf_flag_and_parity() -> None:
    assert decode_path(bytes([0x00, 0x12])) == ((1, 2), False)
    assert decode_path(bytes([0x11, 0x23])) == ((1, 2, 3), False)
    assert decode_path(bytes([0x20, 0xAB])) == ((0xA, 0xB), True)
    assert decode_path(bytes([0x3C])) == ((0xC,), True)


@pytest.mark.parametrize("encoded", [b"", bytes([0x40]), bytes([0x05, 0x12])])
def test_malformed_hex_prefix_paths_are_refused(encoded: bytes) -> None:
    with pytest.raises(ProofError):
        decode_path(encoded)


def test_a_value_in_an_inline_leaf_under_a_branch_is_proven() -> None:
    leaf = [bytes([0x32, 0x34]), b"v"]  # path 2,3,4 (odd, leaf): its RLP is 5 bytes, so it sits inline
    assert len(rlp.encode(leaf)) < 32
    root = rlp.encode(_branch({1: leaf}))
    assert verify_proof(keccak(root), bytes([0x12, 0x34]), [root]) == b"v"
    assert verify_proof(keccak(root), bytes([0x12, 0x35]), [root]) is None  # the leaf's path differs
    assert verify_proof(keccak(root), bytes([0x22, 0x34]), [root]) is None  # an empty branch slot


def test_a_value_behind_an_extension_and_a_hashed_branch_is_proven() -> None:
    long_value = b"x" * 40  # a leaf this long is referenced by hash
    leaf = rlp.encode([bytes([0x35, 0x67]), long_value])
    branch = rlp.encode(_branch({4: keccak(leaf)}))
    extension = rlp.encode([bytes([0x00, 0x12]), keccak(branch)])  # path 1,2; branch child 4; leaf path 5,6,7
    proof = [extension, branch, leaf]
    assert verify_proof(keccak(extension), bytes([0x12, 0x45, 0x67]), proof) == long_value
    assert verify_proof(keccak(extension), bytes([0x13, 0x45, 0x67]), [extension]) is None


def test_a_node_that_does_not_hash_to_its_reference_is_refused() -> None:
    leaf = rlp.encode([bytes([0x35, 0x67]), b"y" * 40])
    branch = rlp.encode(_branch({4: keccak(leaf)}))
    forged = rlp.encode([bytes([0x35, 0x67]), b"z" * 40])
    with pytest.raises(ProofError, match="node 1: its hash"):
        verify_proof(keccak(branch), bytes([0x45, 0x67]), [branch, forged])


def test_a_proof_that_stops_short_is_refused() -> None:
    leaf = rlp.encode([bytes([0x35, 0x67]), b"y" * 40])
    branch = rlp.encode(_branch({4: keccak(leaf)}))
    with pytest.raises(ProofError, match="ends before"):
        verify_proof(keccak(branch), bytes([0x45, 0x67]), [branch])


def test_the_empty_trie_proves_every_key_absent() -> None:
    assert verify_proof(EMPTY_TRIE_ROOT, keccak(b"any"), []) is None
