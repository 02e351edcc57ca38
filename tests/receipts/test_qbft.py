"""QBFT block hashes and commit seals: Besu's extraData vector, headers sealed by deploy/besu's validator keys,
and a QBFT receipt verified end to end through the CLI against deploy/besu/genesis.json."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
import rlp
from eth_keys import keys
from eth_utils import keccak

from consentledger.receipts import qbft
from consentledger.receipts.build import _qbft_onchain, build_receipt
from consentledger.receipts.header import encode_header
from consentledger.receipts.qbft import QbftExtraDataError, check_seals, decode_extra_data
from consentledger.receipts.receipt import Receipt
from consentledger.receipts.verify import verify_sealed_receipt

from .test_receipts import Chain, _cli
from .test_receipts import chain as chain  # the module's own anvil with a deployed, accessed ledger

BESU = Path(__file__).parents[2] / "deploy" / "besu"
GENESIS = BESU / "genesis.json"
DIFFICULTY, RECEIPTS_ROOT, MIX_HASH = 7, 5, 13
BESU_MIX_HASH = bytes.fromhex("63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365")

# QbftExtraDataCodecTest.RAW_HEX_ENCODING_STRING (hyperledger/besu 3fd224e2,
# consensus/qbft/src/test/java/org/hyperledger/besu/consensus/qbft/QbftExtraDataCodecTest.java): vanity 0x01..0x20,
# validators 0x..01 and 0x..02, an add vote for 0x..01, round 0xFEDCBA, seals (r=1, s=10, v=0) and (r=10, s=1, v=0).
BESU_EXTRA_DATA = bytes.fromhex(
    "f8f0a00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20ea940000000000000000"
    "000000000000000000000001940000000000000000000000000000000000000002d7940000000000000000"
    "00000000000000000000000181ff83fedcbaf886b841000000000000000000000000000000000000000000"
    "0000000000000000000001000000000000000000000000000000000000000000000000000000000000000a"
    "00b841000000000000000000000000000000000000000000000000000000000000000a0000000000000000"
    "00000000000000000000000000000000000000000000000100"
)


def _key(node: str) -> keys.PrivateKey:
    """Return a node's private key from deploy/besu/nodes/<node>/key (Besu's format: 0x + 64 hex, no newline)."""
    return keys.PrivateKey(bytes.fromhex((BESU / "nodes" / node / "key").read_text().strip()[2:]))


VALIDATOR_KEYS = tuple(_key(f"validator{i}") for i in range(1, 5))
VALIDATORS = tuple(k.public_key.to_checksum_address() for k in VALIDATOR_KEYS)
OUTSIDER = _key("rpc")  # a node of the network, but no validator


def _fields(number: int = 7) -> list[bytes]:
    """Return the header items of a shanghai block (as Besu writes one on deploy/besu), extraData left empty."""
    return [
        keccak(text="parent"), keccak(rlp.encode([])), bytes.fromhex(VALIDATORS[0][2:]), keccak(text="state"),
        keccak(text="txs"), keccak(text="receipts"), bytes(256), b"\x01", _scalar(number),
        bytes.fromhex("1fffffffffffff"), b"\x52\x08", _scalar(1_700_000_000 + number), b"",
        BESU_MIX_HASH, bytes(8), b"", keccak(text="withdrawals"),
    ]


def _scalar(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _extra(validators: Sequence[bytes], round_: int, seals: Sequence[bytes], vote: list[bytes] | None = None) -> bytes:
    """Return a QBFT extraData built by hand (not by our encoder): RLP([vanity, validators, vote, round, seals])."""
    return rlp.encode([bytes(32), list(validators), vote or [], round_, list(seals)])


def _sealed(signers: Sequence[keys.PrivateKey], *, round_: int = 1, items: list[bytes] | None = None,
            validators: Sequence[str] = VALIDATORS, vote: list[bytes] | None = None) -> bytes:
    """Return a header sealed by `signers` over its commit-seal hash, its validators sorted as Besu writes them."""
    items = list(items if items is not None else _fields())
    named = sorted(bytes.fromhex(v[2:]) for v in validators)
    items[qbft.EXTRA_DATA] = _extra(named, round_, [], vote)
    digest = keccak(rlp.encode(items))  # the commit-seal hash: round kept, no seals
    items[qbft.EXTRA_DATA] = _extra(named, round_, [k.sign_msg_hash(digest).to_bytes() for k in signers], vote)
    return rlp.encode(items)


def _onchain_hash_by_hand(header: bytes) -> bytes:
    items = rlp.decode(header)
    vanity, validators, vote, _, _ = rlp.decode(items[qbft.EXTRA_DATA])
    items[qbft.EXTRA_DATA] = rlp.encode([vanity, validators, vote, 0, []])
    return keccak(rlp.encode(items))


def test_besu_extra_data_vector_decodes_to_its_parts_and_encodes_back() -> None:
    """Besu's QbftExtraDataCodecTest vector: our decoder reads its parts, our encoder writes its bytes."""
    extra = decode_extra_data(BESU_EXTRA_DATA)
    assert extra.vanity == bytes(range(1, 33))
    assert extra.validators == (bytes(19) + b"\x01", bytes(19) + b"\x02")
    assert extra.vote == qbft.Vote(bytes(19) + b"\x01", add=True)
    assert extra.round == 0xFEDCBA
    one, ten = (1).to_bytes(32, "big"), (10).to_bytes(32, "big")
    assert extra.seals == (one + ten + b"\0", ten + one + b"\0")
    assert qbft.encode_extra_data(extra) == BESU_EXTRA_DATA


def test_the_example_genesis_names_the_validators_whose_keys_are_in_deploy_besu() -> None:
    assert set(qbft.validators_from_genesis(json.loads(GENESIS.read_text()))) == set(VALIDATORS)


@pytest.mark.parametrize(("n", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (7, 5), (10, 7)])
def test_quorum_is_besus_ceiling_of_two_thirds(n: int, needed: int) -> None:
    assert qbft.quorum(n) == needed


def test_a_block_sealed_by_a_quorum_verifies_and_gives_its_onchain_hash() -> None:
    header = _sealed(VALIDATOR_KEYS[:3])
    verdict = check_seals(header, VALIDATORS)
    assert verdict.valid, verdict.reason
    assert verdict.block_hash == _onchain_hash_by_hand(header) == keccak(qbft.onchain_header(header))
    assert set(verdict.signers) == set(VALIDATORS[:3])
    assert "sealed by 3 of 4 trusted validators (quorum 3)" in verdict.reason


def test_a_block_sealed_by_every_validator_verifies() -> None:
    assert check_seals(_sealed(VALIDATOR_KEYS), VALIDATORS).valid


def test_the_onchain_hash_leaves_out_the_round_and_the_seals_but_the_commit_seal_hash_keeps_the_round() -> None:
    """A block committed at round 0 by three validators and at round 2 by others has one hash (Besu's reason)."""
    early, late = _sealed(VALIDATOR_KEYS[:3], round_=0), _sealed(VALIDATOR_KEYS[1:], round_=2)
    assert early != late
    assert qbft.onchain_hash(early) == qbft.onchain_hash(late)
    assert qbft.commit_seal_hash(early) != qbft.commit_seal_hash(late)


def test_a_block_with_fewer_seals_than_a_quorum_is_refused() -> None:
    verdict = check_seals(_sealed(VALIDATOR_KEYS[:2]), VALIDATORS)
    assert not verdict.valid
    assert "2 of 4 validators sealed the block, a quorum is 3" in verdict.reason


def test_a_seal_by_a_non_validator_is_refused() -> None:
    verdict = check_seals(_sealed([*VALIDATOR_KEYS[:3], OUTSIDER]), VALIDATORS)
    assert not verdict.valid
    assert f"{OUTSIDER.public_key.to_checksum_address()} is not a trusted validator" in verdict.reason


def test_a_duplicate_seal_is_refused() -> None:
    """Two validators and one of them twice: three seals, two signers (Besu's duplicate check comes first)."""
    verdict = check_seals(_sealed([*VALIDATOR_KEYS[:2], VALIDATOR_KEYS[0]]), VALIDATORS)
    assert not verdict.valid and "sealed the block twice" in verdict.reason


def test_a_header_naming_other_validators_than_the_trusted_set_is_refused() -> None:
    header = _sealed(VALIDATOR_KEYS[:3], validators=VALIDATORS[:3])
    verdict = check_seals(header, VALIDATORS)
    assert not verdict.valid and "not the trusted set" in verdict.reason


def test_a_header_whose_validators_are_not_sorted_is_refused() -> None:
    items = rlp.decode(_sealed(VALIDATOR_KEYS[:3]))
    vanity, validators, vote, round_, seals = rlp.decode(items[qbft.EXTRA_DATA])
    items[qbft.EXTRA_DATA] = rlp.encode([vanity, validators[::-1], vote, round_, seals])
    verdict = check_seals(rlp.encode(items), VALIDATORS)
    assert not verdict.valid and "not sorted" in verdict.reason


def test_a_block_carrying_a_vote_verifies() -> None:
    header = _sealed(VALIDATOR_KEYS[:3], vote=[bytes.fromhex(OUTSIDER.public_key.to_checksum_address()[2:]), b"\xff"])
    assert decode_extra_data(rlp.decode(header)[qbft.EXTRA_DATA]).vote is not None
    assert check_seals(header, VALIDATORS).valid


def _altered_item(index: int) -> Callable[[list[bytes]], None]:
    def alter(items: list[bytes]) -> None:
        items[index] = (items[index][:-1] + bytes([items[index][-1] ^ 1])) if items[index] else b"\x01"
    return alter


def _altered_extra(part: int, value: object) -> Callable[[list[bytes]], None]:
    def alter(items: list[bytes]) -> None:
        extra = rlp.decode(items[qbft.EXTRA_DATA])
        extra[part] = value
        items[qbft.EXTRA_DATA] = rlp.encode(extra)
    return alter


HEADER_FIELDS = ("parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
                 "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
                 "baseFeePerGas", "withdrawalsRoot")
ALTERED = {
    **{name: _altered_item(i) for i, name in enumerate(HEADER_FIELDS) if name != "extraData"},
    "extraData vanity": _altered_extra(0, b"\x01" * 32),
    "extraData round": _altered_extra(3, 2),
    "extraData vote": _altered_extra(2, [bytes(20), b"\xff"]),
}


@pytest.mark.parametrize("name", sorted(ALTERED))
def test_a_sealed_header_with_any_field_altered_is_refused(name: str) -> None:
    """Every header field and every hashed part of extraData is under the seals: a change recovers other signers."""
    items = rlp.decode(_sealed(VALIDATOR_KEYS[:3]))
    ALTERED[name](items)
    verdict = check_seals(rlp.encode(items), VALIDATORS)
    assert not verdict.valid
    assert "is not a trusted validator" in verdict.reason, verdict.reason


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (b"\x01\x02", "not RLP"),
        (rlp.encode([bytes(32), [], []]), "not an RLP list of vanity"),
        (rlp.encode([bytes(32), [b"\x01"], [], b"", []]), "validators are not a list of 20-byte"),
        (rlp.encode([bytes(32), [], b"", b"", []]), "vote is not an empty list"),
        (rlp.encode([bytes(32), [], [bytes(20), b"\x01"], b"", []]), "vote kind is not 0xff"),
        (rlp.encode([bytes(32), [], [], b"\x00\x01", []]), "round is not an RLP scalar"),
        (rlp.encode([bytes(32), [], [], b"\x80\x00\x00\x00", []]), "round is not an RLP scalar"),
        (rlp.encode([bytes(32), [], [], b"", [bytes(64)]]), "65-byte signatures"),
        (rlp.encode([bytes(32), [], [], b"", [bytes(64) + b"\x1b"]]), "recovery id"),
    ],
)
def test_malformed_extra_data_is_refused_naming_the_part(extra: bytes, problem: str) -> None:
    with pytest.raises(QbftExtraDataError, match=problem):
        decode_extra_data(extra)
    items = _fields()
    items[qbft.EXTRA_DATA] = extra
    verdict = check_seals(rlp.encode(items), VALIDATORS)
    assert not verdict.valid and verdict.reason.startswith("block header:")


def test_a_seal_that_is_no_signature_is_refused() -> None:
    items = rlp.decode(_sealed(VALIDATOR_KEYS[:3]))
    vanity, validators, vote, round_, seals = rlp.decode(items[qbft.EXTRA_DATA])
    items[qbft.EXTRA_DATA] = rlp.encode([vanity, validators, vote, round_, [bytes(64) + b"\x00", *seals[1:]]])
    verdict = check_seals(rlp.encode(items), VALIDATORS)
    assert not verdict.valid and "seal 0: r or s is zero" in verdict.reason


def test_the_genesis_block_is_not_checked_by_seals() -> None:
    items = _fields(number=0)
    items[qbft.EXTRA_DATA] = _extra([], 0, [])
    header = rlp.encode(items)
    assert qbft.onchain_hash(header) == keccak(header)  # Besu keeps the genesis extraData as it is
    assert not check_seals(header, VALIDATORS).valid


@pytest.mark.process
def test_a_receipt_without_a_sealed_header_is_refused_by_the_seal_check(chain: Chain) -> None:
    verdict = verify_sealed_receipt(build_receipt(chain.ledger, chain.record, 1), validators=VALIDATORS)
    assert not verdict.valid and "no sealed header" in verdict.reason


def _qbft_receipt(chain: Chain, signers: Sequence[keys.PrivateKey]) -> Receipt:
    """Return anvil's receipt of access 1 moved onto a QBFT header: anvil's fields, sealed by `signers`.

    The header keeps anvil's state root, number and timestamp, so the receipt's trie proofs and
    entries still check; only extraData (and mixHash, difficulty as on Besu) differ.
    """
    receipt = build_receipt(chain.ledger, chain.record, 1)
    items = rlp.decode(receipt.header)
    items[DIFFICULTY], items[MIX_HASH] = b"\x01", BESU_MIX_HASH
    sealed = _sealed(signers, items=items)
    onchain = qbft.onchain_header(sealed)
    return replace(receipt, header=onchain, block_hash=keccak(onchain), sealed_header=sealed)


@pytest.mark.process
def test_a_qbft_receipt_verifies_by_the_seals_of_the_trusted_validators(chain: Chain) -> None:
    receipt = Receipt.loads(_qbft_receipt(chain, VALIDATOR_KEYS[:3]).dumps())
    assert receipt.sealed_header is not None
    verdict = verify_sealed_receipt(receipt, validators=VALIDATORS)
    assert verdict.valid and verdict.anchored, verdict.reason
    assert verdict.reason.endswith("sealed by 3 of its 4 trusted validators")


@pytest.mark.process
def test_a_qbft_receipt_whose_header_is_not_its_sealed_header_is_refused(chain: Chain) -> None:
    """The sealed header vouches for its on-chain hash; a receipt's header of another block does not match it."""
    good = _qbft_receipt(chain, VALIDATOR_KEYS[:3])
    items = rlp.decode(good.sealed_header or b"")
    items[RECEIPTS_ROOT] = keccak(text="other receipts")
    moved = replace(good, sealed_header=_sealed(VALIDATOR_KEYS[:3], items=items))
    verdict = verify_sealed_receipt(moved, validators=VALIDATORS)
    assert not verdict.valid and "is not the trusted" in verdict.reason


def test_building_accepts_a_qbft_header_by_its_onchain_hash_only() -> None:
    """What `receipt get` does with a header that does not hash to its block hash as it is."""
    sealed = _sealed(VALIDATOR_KEYS[:3])
    assert _qbft_onchain(sealed, qbft.onchain_hash(sealed)) == (qbft.onchain_header(sealed), sealed)
    assert _qbft_onchain(sealed, bytes(32)) == (sealed, None)
    plain = encode_header({"parentHash": "0x" + "00" * 32, "sha3Uncles": "0x" + "00" * 32, "miner": "0x" + "00" * 20,
                           "stateRoot": "0x" + "00" * 32, "transactionsRoot": "0x" + "00" * 32,
                           "receiptsRoot": "0x" + "00" * 32, "logsBloom": "0x" + "00" * 256, "difficulty": "0x0",
                           "number": "0x5", "gasLimit": "0x1", "gasUsed": "0x0", "timestamp": "0x1", "extraData": "0x",
                           "mixHash": "0x" + "00" * 32, "nonce": "0x" + "00" * 8})
    assert _qbft_onchain(plain, bytes(32)) == (plain, None)  # not QBFT: refused as before


@pytest.mark.process
def test_cli_verifies_a_qbft_receipt_against_the_example_genesis(chain: Chain, tmp_path: Path) -> None:
    out = tmp_path / "receipt.json"
    out.write_text(_qbft_receipt(chain, VALIDATOR_KEYS[1:]).dumps())
    ok = _cli("receipt", "verify", str(out), "--genesis", str(GENESIS))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("valid: access 1 to record")
    by_list = _cli("receipt", "verify", str(out), "--validators", ",".join(VALIDATORS))
    assert by_list.returncode == 0, by_list.stderr
    # The on-chain hash also works as a trusted hash: the receipt's header is the on-chain one.
    block_hash = "0x" + json.loads(out.read_text())["block_hash"][2:]
    assert _cli("receipt", "verify", str(out), "--block-hash", block_hash).returncode == 0

    out.write_text(_qbft_receipt(chain, VALIDATOR_KEYS[:2]).dumps())
    bad = _cli("receipt", "verify", str(out), "--genesis", str(GENESIS))
    assert bad.returncode == 9
    assert "invalid: commit seals: 2 of 4 validators sealed the block, a quorum is 3" in bad.stderr


@pytest.mark.process
def test_cli_refuses_validators_together_with_a_trusted_hash_or_a_bad_genesis(chain: Chain, tmp_path: Path) -> None:
    out = tmp_path / "receipt.json"
    out.write_text(_qbft_receipt(chain, VALIDATOR_KEYS[:3]).dumps())
    both = _cli("receipt", "verify", str(out), "--genesis", str(GENESIS), "--block-hash", "0x" + "00" * 32)
    assert both.returncode == 2 and "not both" in both.stderr
    not_qbft = tmp_path / "genesis.json"
    not_qbft.write_text(json.dumps({"config": {"chainId": 1}, "extraData": "0x"}))
    bad = _cli("receipt", "verify", str(out), "--genesis", str(not_qbft))
    assert bad.returncode == 2 and "not a QBFT network" in bad.stderr
    wrong = _cli("receipt", "verify", str(out), "--validators", "0x1234")
    assert wrong.returncode == 2 and "not a list of addresses" in wrong.stderr
