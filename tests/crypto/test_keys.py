"""Keystore files: encrypted round trip, private file mode, clear errors, signer selection."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from consentledger.chain.accounts import dev_account
from consentledger.cli.common import load_signer
from consentledger.crypto.keys import (
    DEFAULT_PASSWORD_ENV,
    keystore_address,
    load_account,
    new_keystore,
    password_from_env,
)
from consentledger.errors import ConfigurationError, KeystoreError

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def keystore(tmp_path: Path) -> Path:
    """A keystore holding dev account 1, encrypted with PASSWORD."""
    path = tmp_path / "org.json"
    new_keystore(path, PASSWORD, account=dev_account(1))
    return path


def test_new_keystore_round_trips_a_fresh_key(tmp_path: Path) -> None:
    """A fresh key written to a keystore loads back as the same account."""
    path = tmp_path / "keys" / "fresh.json"
    address = new_keystore(path, PASSWORD)
    account = load_account(path, PASSWORD)
    assert account.address == address
    assert json.loads(path.read_text())["version"] == 3


def test_new_keystore_keeps_a_given_account(keystore: Path) -> None:
    """Encrypting an existing account stores exactly that key."""
    assert load_account(keystore, PASSWORD).key == dev_account(1).key
    assert keystore_address(keystore) == dev_account(1).address


def test_keystore_file_is_private_to_its_owner(keystore: Path) -> None:
    """The keystore is written with mode 0600."""
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600


def test_wrong_password_raises_keystore_error(keystore: Path) -> None:
    """A wrong password is reported as such, in one line."""
    with pytest.raises(KeystoreError, match="wrong password") as caught:
        load_account(keystore, "not the password")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"version": 3}', '{"crypto": {}}'])
def test_malformed_keystore_raises_keystore_error(tmp_path: Path, content: str) -> None:
    """A file that is not a keystore gives a KeystoreError, not a traceback."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KeystoreError, match="not a (valid )?keystore"):
        load_account(path, PASSWORD)


def test_missing_keystore_raises_keystore_error(tmp_path: Path) -> None:
    """A missing file gives a KeystoreError naming the path."""
    with pytest.raises(KeystoreError, match="cannot read keystore .*missing.json"):
        load_account(tmp_path / "missing.json", PASSWORD)


def test_keystore_whose_address_field_lies_is_rejected(keystore: Path) -> None:
    """A keystore recording another address than the key it holds is refused."""
    data = json.loads(keystore.read_text())
    data["address"] = dev_account(2).address[2:].lower()
    keystore.write_text(json.dumps(data))
    with pytest.raises(KeystoreError, match="holds another key"):
        load_account(keystore, PASSWORD)


def test_existing_keystore_is_not_overwritten_unless_asked(keystore: Path) -> None:
    """Writing over an existing keystore is refused; with overwrite it is replaced."""
    before = keystore.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        new_keystore(keystore, PASSWORD, account=dev_account(2))
    assert keystore.read_bytes() == before
    assert list(keystore.parent.iterdir()) == [keystore]  # no temp file left behind
    assert new_keystore(keystore, PASSWORD, account=dev_account(2), overwrite=True) == (
        dev_account(2).address
    )
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600


def test_empty_password_is_refused(tmp_path: Path) -> None:
    """A keystore is never encrypted with an empty password."""
    with pytest.raises(KeystoreError, match="empty password"):
        new_keystore(tmp_path / "k.json", "")


@pytest.mark.parametrize("value", [None, ""])
def test_missing_password_env_var_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """An unset or empty password variable gives a KeystoreError naming it."""
    if value is None:
        monkeypatch.delenv("ORG1_KEY_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("ORG1_KEY_PASSWORD", value)
    with pytest.raises(KeystoreError, match="ORG1_KEY_PASSWORD"):
        password_from_env("ORG1_KEY_PASSWORD")


def test_password_from_env_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The password is taken from the named variable."""
    monkeypatch.setenv(DEFAULT_PASSWORD_ENV, PASSWORD)
    assert password_from_env(DEFAULT_PASSWORD_ENV) == PASSWORD


def test_load_signer_from_keystore_uses_the_env_password(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--keystore with --password-env decrypts the file with the variable's value."""
    monkeypatch.setenv("ORG1_KEY_PASSWORD", PASSWORD)
    assert load_signer(keystore, "ORG1_KEY_PASSWORD", None).address == dev_account(1).address


def test_load_signer_from_dev_account_index() -> None:
    """--dev-account N picks the Nth dev account."""
    assert load_signer(None, DEFAULT_PASSWORD_ENV, 3).address == dev_account(3).address


@pytest.mark.parametrize(
    ("use_keystore", "dev_index", "message"),
    [(False, None, "no signer"), (True, 0, "not both"), (False, -1, ">= 0")],
)
def test_load_signer_needs_exactly_one_valid_source(
    keystore: Path, use_keystore: bool, dev_index: int | None, message: str
) -> None:
    """Neither, both, or a negative dev index is a configuration error."""
    with pytest.raises(ConfigurationError, match=message):
        load_signer(keystore if use_keystore else None, DEFAULT_PASSWORD_ENV, dev_index)
