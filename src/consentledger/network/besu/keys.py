"""Besu node keys: the `key` / `key.pub` files, the node address and the enode URL derived from them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from eth_keys import keys
from eth_keys.exceptions import ValidationError
from eth_utils import keccak, to_checksum_address

from consentledger.errors import NetworkConfigError
from consentledger.types import Address

KEY_FILE = "key"
PUBLIC_KEY_FILE = "key.pub"


@dataclass(frozen=True)
class NodeKey:
    """A node's secp256k1 key pair; its address is a QBFT validator's identity, its public key the enode id."""

    private_key: bytes

    @classmethod
    def generate(cls) -> NodeKey:
        """Return a fresh random key (from the OS's CSPRNG)."""
        while True:
            candidate = secrets.token_bytes(32)
            try:
                keys.PrivateKey(candidate)
            except ValidationError:  # zero or >= the curve order: astronomically rare, draw again
                continue
            return cls(candidate)

    @property
    def public_key(self) -> bytes:
        """The 64-byte uncompressed public key without the 0x04 prefix."""
        return keys.PrivateKey(self.private_key).public_key.to_bytes()

    @property
    def address(self) -> Address:
        """The last 20 bytes of keccak-256 of the public key, checksummed."""
        return address_of_public_key(self.public_key)

    def enode(self, host: str, port: int) -> str:
        """Return the node's enode URL at `host:port`."""
        return f"enode://{self.public_key.hex()}@{host}:{port}"

    def save(self, directory: Path) -> None:
        """Write `key` (0x-hex private key, one line, owner-only) and `key.pub` as Besu writes them."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / KEY_FILE
        key_file.write_text("0x" + self.private_key.hex())
        key_file.chmod(0o600)
        (directory / PUBLIC_KEY_FILE).write_text("0x" + self.public_key.hex())


def address_of_public_key(public_key: bytes) -> Address:
    """Return the address of a 64-byte uncompressed public key (no 0x04 prefix)."""
    if len(public_key) != 64:
        raise ValueError(f"a node public key has 64 bytes, got {len(public_key)}")
    return Address(to_checksum_address(keccak(public_key)[-20:]))


def load_key(directory: Path) -> NodeKey:
    """Read `directory/key` the way Besu does (exactly one line of hex); raise NetworkConfigError naming the file."""
    path = directory / KEY_FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise NetworkConfigError(f"{path}: missing (the node's private key)") from None
    except OSError as exc:
        raise NetworkConfigError(f"{path}: unreadable: {exc}") from None
    if len(lines) != 1:
        raise NetworkConfigError(f"{path}: Besu needs exactly one line of hex, found {len(lines)} lines")
    private = _hex(lines[0].strip(), 32)
    if private is None:
        raise NetworkConfigError(f"{path}: not a 32-byte hex private key")
    try:
        keys.PrivateKey(private)
    except ValidationError:
        raise NetworkConfigError(f"{path}: not a valid secp256k1 private key") from None
    return NodeKey(private)


def load_public_key(directory: Path) -> bytes:
    """Read `directory/key.pub` (0x-hex, 64 bytes); raise NetworkConfigError naming the file."""
    path = directory / PUBLIC_KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise NetworkConfigError(f"{path}: missing (the node's public key)") from None
    public = _hex(text, 64)
    if public is None:
        raise NetworkConfigError(f"{path}: not a 64-byte hex public key")
    return public


def parse_enode(url: str) -> tuple[bytes, str, int] | None:
    """Return (public key, host, port) of an enode URL, or None if it is not one."""
    if not url.startswith("enode://") or "@" not in url:
        return None
    node_id, _, where = url[len("enode://"):].partition("@")
    where = where.split("?", 1)[0]
    host, _, port = where.rpartition(":")
    public = _hex(node_id, 64)
    if public is None or not host or not port.isdigit():
        return None
    return public, host, int(port)


def _hex(text: str, size: int) -> bytes | None:
    digits = text[2:] if text.startswith(("0x", "0X")) else text
    if len(digits) != 2 * size:
        return None
    try:
        return bytes.fromhex(digits)
    except ValueError:
        return None
