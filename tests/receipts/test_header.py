"""Block headers re-encoded from anvil's JSON-RPC fields hash to the block hash, for each fork's field set."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from consentledger.chain import node as node_module
from consentledger.chain.connect import connect
from consentledger.chain.node import ChainKind, start_node
from consentledger.receipts.header import HeaderError, decode_header, encode_header

pytestmark = pytest.mark.process


@pytest.mark.parametrize("fork", ["london", "shanghai", "cancun", "prague"])
def test_header_rlp_hashes_to_the_block_hash(monkeypatch: pytest.MonkeyPatch, fork: str) -> None:
    monkeypatch.setattr(node_module, "HARDFORK", fork)
    with start_node(ChainKind.ANVIL, accounts=1) as node:
        w3 = connect(node.rpc_url)
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        block = w3.provider.make_request("eth_getBlockByNumber", ["latest", False])["result"]  # type: ignore[arg-type]
    header = encode_header(block)
    assert "0x" + keccak(header).hex() == block["hash"]
    decoded = decode_header(header)
    assert (decoded.number, decoded.timestamp) == (int(block["number"], 16), int(block["timestamp"], 16))
    assert "0x" + decoded.state_root.hex() == block["stateRoot"]
    if fork == "prague":
        assert "requestsHash" in block  # the whole optional tail was present and encoded


def test_a_block_missing_a_header_field_is_refused() -> None:
    with pytest.raises(HeaderError, match="no stateRoot"):
        encode_header({"parentHash": "0x" + "00" * 32, "sha3Uncles": "0x" + "00" * 32, "miner": "0x" + "00" * 20})
