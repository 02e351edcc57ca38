"""Node keys: Besu's file format, the address and enode URL derived from the public key."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentledger.errors import NetworkConfigError
from consentledger.network.besu.keys import NodeKey, load_key, load_public_key, parse_enode

# Besu's QBFT tutorial genesis lists this key next to the account it funds (alloc "fe3b557e…"):
# https://besu.hyperledger.org/private-networks/tutorials/qbft (qbftConfigFile.json)
TUTORIAL_KEY = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63"
TUTORIAL_ADDRESS = "0xFE3B557E8Fb62b89F4916B721be55cEb828dBd73"


def test_address_is_the_last_20_bytes_of_the_public_keys_keccak() -> None:
    """The tutorial's published key derives to the published address."""
    assert NodeKey(bytes.fromhex(TUTORIAL_KEY)).address == TUTORIAL_ADDRESS


def test_saved_key_files_read_back_as_besu_writes_them(tmp_path: Path) -> None:
    """`key` is one line of 0x-hex (owner-only), `key.pub` the 64-byte public key; both load back."""
    key = NodeKey.generate()
    key.save(tmp_path)
    text = (tmp_path / "key").read_text()
    assert text == "0x" + key.private_key.hex() and len(text) == 66
    assert (tmp_path / "key").stat().st_mode & 0o077 == 0
    assert load_key(tmp_path) == key
    assert load_public_key(tmp_path) == key.public_key


def test_enode_url_round_trips() -> None:
    """The enode URL carries the public key, host and port."""
    key = NodeKey.generate()
    assert parse_enode(key.enode("172.16.239.11", 30303)) == (key.public_key, "172.16.239.11", 30303)
    assert parse_enode("enode://abc@host:1") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [("0x1234", "not a 32-byte hex private key"), ("0x" + "00" * 32, "not a valid secp256k1"),
     ("0x" + "11" * 32 + "\n0x" + "22" * 32, "exactly one line")],
)
def test_bad_key_file_is_refused_naming_the_file(tmp_path: Path, content: str, problem: str) -> None:
    """A key Besu could not load is refused with the file's path."""
    (tmp_path / "key").write_text(content)
    with pytest.raises(NetworkConfigError, match=f"{tmp_path / 'key'}: .*{problem}"):
        load_key(tmp_path)
