"""Telling an operator whether a new signer can pay for its transactions, and how to fund it."""

from __future__ import annotations

from consentledger.cli.common import console
from consentledger.errors import ChainUnavailableError


def print_funding(rpc_url: str, address: str) -> None:
    """Print whether `address` can pay for a gateway write on `rpc_url`, and the `chain fund` command when it cannot.

    A chain that does not answer is no error here: the advice then names the command to run once it does.
    """
    from consentledger.chain.funds import WRITE_GAS, format_amount, signer_funds

    try:
        funds = signer_funds(rpc_url, address)
        funding = funds.funding()
    except ChainUnavailableError as exc:
        console.print(f"funding       not checked ({exc})")
        console.print("  on a chain that charges gas, fund the signer before it sends anything: "
                      f"consentledger chain fund {address} --amount 1ether --rpc {rpc_url} "
                      "--dev-account 0 (a local chain) or --keystore PAYER.json")
        return
    if funding.gas_price == 0:
        console.print("funding       none needed: this chain's gas price is 0")
        return
    price = format_amount(funding.gas_price)
    cost = f"a write needs ≥ {format_amount(funding.needed)}: {WRITE_GAS:,} gas at gas price {price}"
    if funding.funded:
        console.print(f"funding       {format_amount(funding.balance)}: enough ({cost})")
        return
    console.print(f"funding       {format_amount(funding.balance)}: the signer cannot pay for its chain writes "
                  f"({cost}); fund it with:")
    console.print(f"  {funds.error(funding).fund_command}")
