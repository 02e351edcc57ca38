"""QBFT extraData: Besu's published genesis vectors decode to their validators; ours encode the same way."""

from __future__ import annotations

import pytest
import rlp

from consentledger.network.besu.extradata import (
    ExtraDataError,
    decode_extra_data,
    encode_genesis_extra_data,
    fault_tolerance,
)

BESU_DOCS_QBFT_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6263b7297a96638cac6ae65e654"
    "1f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf"
    "93039b212648e01c6c6b78c080c0"
)
BESU_DOCS_VALIDATORS = (
    "0x64A702E6263b7297a96638cAc6aE65e6541F4169",
    "0x3923390AD55E90C237593B3B0E401f3b08a03185",
    "0xAefDb9A738c9f433E5b6b212a6d62f6370C2F692",
    "0xC7EeB9a4e00Ce683cf93039b212648E01C6c6B78",
)
BESU_DOCS_CONTRACT_SELECTION_EXTRA_DATA = "0xe5a0" + "00" * 32 + "c0c080c0"


def test_published_besu_qbft_genesis_extra_data_decodes_to_its_four_validators() -> None:
    """The block-header-validator genesis of Besu's QBFT page names four validators, no vote, round 0, no seals.

    Source: https://besu.hyperledger.org/private-networks/how-to/configure/consensus/qbft#genesis-file
    (hyperledger/besu-docs, docs/private-networks/how-to/configure/consensus/qbft.md, "Block header
    validator selection" example genesis).
    """
    extra = decode_extra_data(BESU_DOCS_QBFT_EXTRA_DATA)
    assert extra.validators == BESU_DOCS_VALIDATORS
    assert extra.vanity == bytes(32)
    assert (extra.vote, extra.round, extra.seals) == (None, 0, ())


def test_encoding_the_published_validators_gives_the_published_bytes() -> None:
    """Our encoder writes exactly what Besu's QbftExtraDataCodec wrote for the docs' genesis (round 0 as 0x80)."""
    assert encode_genesis_extra_data(BESU_DOCS_VALIDATORS) == BESU_DOCS_QBFT_EXTRA_DATA


def test_contract_selection_genesis_has_no_validators_in_extra_data() -> None:
    """The docs' contract-validator genesis (same page, other tab) carries an empty validator list."""
    assert decode_extra_data(BESU_DOCS_CONTRACT_SELECTION_EXTRA_DATA).validators == ()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("0xzz", "not hex"),
        ("0xc0", "expected an RLP list of 5 items"),
        ("0x" + rlp.encode([bytes(31), [], [], b"", []]).hex(), "vanity must be 32 bytes"),
        # round written as 4 bytes (IBFT 2.0 style): Besu's readIntScalar refuses leading zeros
        ("0x" + rlp.encode([bytes(32), [], [], bytes(4), []]).hex(), "round must be an RLP scalar"),
        ("0x" + rlp.encode([bytes(32), [b"\x01"], [], b"", []]).hex(), "validators must be a list of 20-byte"),
        ("0x" + rlp.encode([bytes(32), [], [bytes(20), b"\x01"], b"", []]).hex(), "vote's kind must be 0xff"),
    ],
)
def test_malformed_extra_data_is_refused_naming_the_part(data: str, problem: str) -> None:
    """Each malformed part gets its own message."""
    with pytest.raises(ExtraDataError, match=problem):
        decode_extra_data(data)


@pytest.mark.parametrize(
    ("n", "f", "quorum"), [(4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7), (13, 4, 9)]
)
def test_fault_tolerance_follows_besu_quorum(n: int, f: int, quorum: int) -> None:
    """f = ⌊(n−1)/3⌋ faulty validators tolerated; a block needs ⌈2n/3⌉ (Besu's BftHelpers quorum)."""
    assert fault_tolerance(n) == (f, quorum)
