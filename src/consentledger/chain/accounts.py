"""The deterministic development accounts every local chain (ganache, anvil) funds."""

from __future__ import annotations

from functools import cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""anvil's default mnemonic; we hand it to ganache too so both chains fund the same addresses."""

DEV_PATH_PREFIX = "m/44'/60'/0'/0/"
"""BIP-44 path of account i is this prefix followed by i (the path both chains use)."""


@cache
def dev_account(index: int) -> LocalAccount:
    """Return dev account `index` derived from `DEV_MNEMONIC` (cached: derivation is slow)."""
    if index < 0:
        raise ValueError(f"dev account index must be >= 0, got {index}")
    # eth-account gates mnemonic support behind this switch; it only flips a class flag.
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"{DEV_PATH_PREFIX}{index}"
    )
    return account


def dev_accounts(count: int = 10) -> list[LocalAccount]:
    """Return the first `count` development accounts, in the order the local chains fund them."""
    return [dev_account(i) for i in range(count)]
