"""`agency init`: a ready gateway config plus freshly generated, encrypted agency keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from consentledger.crypto.keyfiles import new_kek_file, new_x25519_keyfile
from consentledger.crypto.keys import new_keystore
from consentledger.errors import ConfigurationError


@dataclass(frozen=True)
class NewAgency:
    """What `init_agency` created: where, and the public halves to register on chain."""

    config: Path
    address: str
    x25519_public: bytes
    kek_id: str
    public_url: str


def init_agency(
    directory: Path,
    name: str,
    password: str,
    *,
    rpc_url: str,
    manifest: Path,
    port: int,
    host: str = "127.0.0.1",
    store_url: str = "sqlite:///agency.db",
    password_env: str = "CONSENTLEDGER_KEY_PASSWORD",
    account: LocalAccount | None = None,
) -> NewAgency:
    """Create `directory` with agency.toml, signer.json, x25519.pem, kek.json and pseudonym.json; refuse to overwrite.

    pseudonym.json holds the secret the gateway derives each requester's pseudonym key from, in the
    KEK file's format; it is kept apart from the KEK so pseudonyms stay stable when the KEK rotates.
    """
    config = directory / "agency.toml"
    if config.exists():
        raise ConfigurationError(f"{config} already exists; choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    address = new_keystore(directory / "signer.json", password, account=account)
    x25519_public = new_x25519_keyfile(directory / "x25519.pem", password)
    kek_id = new_kek_file(directory / "kek.json", password)
    new_kek_file(directory / "pseudonym.json", password)
    public_url = f"http://{host}:{port}"
    lines = [
        f"name = {_quote(name)}",
        f"rpc_url = {_quote(rpc_url)}",
        f"manifest = {_quote(str(manifest.resolve()))}",
        'signer_keystore = "signer.json"',
        'x25519_keyfile = "x25519.pem"',
        'kek_keyfile = "kek.json"',
        'pseudonym_keyfile = "pseudonym.json"',
        f"password_env = {_quote(password_env)}",
        f"store_url = {_quote(store_url)}",
        f"host = {_quote(host)}",
        f"port = {port}",
        f"public_url = {_quote(public_url)}",
    ]
    config.write_text("\n".join(lines) + "\n")
    return NewAgency(config, str(address), x25519_public, kek_id, public_url)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
