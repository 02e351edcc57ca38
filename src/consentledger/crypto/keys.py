"""Signer keys in encrypted eth-account keystore (v3) files, passwords from the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from consentledger.crypto.files import write_private_file
from consentledger.errors import KeystoreError
from consentledger.types import Address

DEFAULT_PASSWORD_ENV = "CONSENTLEDGER_KEY_PASSWORD"
"""The environment variable holding a keystore's password unless a command names another."""


def new_keystore(
    path: Path,
    password: str,
    *,
    account: LocalAccount | None = None,
    overwrite: bool = False,
) -> Address:
    """Return the address of `account` (a fresh one if omitted), encrypted into `path`.

    The file is an eth-account keystore v3 (scrypt), readable by its owner only. An existing file
    is kept unless `overwrite` is true.
    """
    if not password:
        raise KeystoreError("refusing to encrypt a keystore with an empty password")
    if account is None:
        account = Account.create()
    keystore = Account.encrypt(account.key, password)
    write_private_file(path, json.dumps(keystore).encode("utf-8"), overwrite=overwrite, what="keystore")
    return Address(account.address)


def load_account(path: Path, password: str) -> LocalAccount:
    """Return the account decrypted from the keystore at `path`.

    Raises `KeystoreError` (one readable line) for a missing file, a file that is not a keystore,
    or a wrong password.
    """
    keystore = _read_keystore(path)
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as exc:
        if str(exc) == "MAC mismatch":
            raise KeystoreError(f"wrong password for keystore {path}") from None
        raise KeystoreError(f"{path} is not a valid keystore: {exc}") from None
    except (KeyError, TypeError, NotImplementedError) as exc:
        raise KeystoreError(f"{path} is not a valid keystore: {exc!r}") from None
    account: LocalAccount = Account.from_key(key)
    if "address" in keystore and _recorded_address(keystore, path) != account.address:
        raise KeystoreError(f"keystore {path} names {keystore['address']} but holds another key")
    return account


def keystore_address(path: Path) -> Address:
    """Return the address recorded in the keystore at `path` (no password needed)."""
    return _recorded_address(_read_keystore(path), path)


def password_from_env(var: str) -> str:
    """Return the password held in environment variable `var`; raise if it is unset or empty."""
    password = os.environ.get(var)
    if not password:
        raise KeystoreError(f"keystore password missing: set the environment variable {var}")
    return password


def _read_keystore(path: Path) -> dict[str, Any]:
    """Return the parsed JSON object of the keystore file at `path`."""
    try:
        keystore = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror or exc}") from exc
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise KeystoreError(f"{path} is not a keystore file (not JSON)") from None
    if not isinstance(keystore, dict):
        raise KeystoreError(f"{path} is not a keystore file (not a JSON object)")
    return keystore


def _recorded_address(keystore: dict[str, Any], path: Path) -> Address:
    """Return the checksummed address a keystore records (v3 files store it without 0x)."""
    recorded = keystore.get("address")
    if isinstance(recorded, str):
        prefixed = recorded if recorded.startswith(("0x", "0X")) else f"0x{recorded}"
        if is_address(prefixed):
            return Address(to_checksum_address(prefixed))
    raise KeystoreError(f"keystore {path} does not record a valid address")
