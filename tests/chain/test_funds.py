"""Whether a signer can pay: amounts with units, balance checks on a real ganache, value transfers."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.funds import WRITE_GAS, Funding, SignerFunds, format_amount, parse_amount
from consentledger.chain.node import LocalNode
from consentledger.chain.params import ChainParams
from consentledger.chain.reverts import RevertDecoder
from consentledger.chain.sender import TransactionSender
from consentledger.chain.transfer import checked_address, fund, send_value
from consentledger.errors import ConfigurationError, InsufficientFundsError

PAYER = 19
"""Dev account paying here; tests/chain/test_relay.py uses it too, never at the same time."""


@pytest.fixture
def w3(ganache: LocalNode) -> Web3:
    """A connection to the session ganache."""
    return connect(ganache.rpc_url)


@pytest.mark.parametrize(("text", "wei"), [
    ("1ether", 10**18), ("0.5 ether", 5 * 10**17), ("1000000gwei", 10**15), ("21000", 21_000),
    ("2 ETH", 2 * 10**18), (".25ether", 25 * 10**16), ("3wei", 3), ("1.5 gwei", 1_500_000_000),
    ("123456789012345678901234567890.000000000000000001 ether", 123456789012345678901234567890 * 10**18 + 1),
])
def test_amounts_are_read_with_their_unit_or_as_wei(text: str, wei: int) -> None:
    """A number with a unit (any case, with or without a space) or a plain number of wei."""
    assert parse_amount(text) == wei


@pytest.mark.parametrize(("text", "problem"), [
    ("1banana", "use a number and a unit"), ("", "use a number and a unit"), ("-1ether", "use a number and a unit"),
    ("1e18", "use a number and a unit"), ("0.5wei", "not a whole number of wei"), ("0ether", "more than 0"),
    (f"{2**256}", "more than any account can hold"),
])
def test_bad_amounts_are_refused_saying_why(text: str, problem: str) -> None:
    """A unit we do not know, a fraction of a wei, zero or an impossible sum: ConfigurationError naming the problem."""
    with pytest.raises(ConfigurationError, match=problem):
        parse_amount(text)


def test_amounts_are_shown_exactly_in_a_readable_unit() -> None:
    """Ether from 0.0001 ether, gwei below, wei for dust; compact for the command line."""
    assert format_amount(0) == "0 wei"
    assert format_amount(21_000) == "21000 wei"
    assert format_amount(2 * 10**9) == "2 gwei"
    assert format_amount(3 * 10**14) == "0.0003 ether"
    assert format_amount(10**18 + 1) == "1.000000000000000001 ether"
    assert format_amount(10**18, compact=True) == "1ether"
    huge = "57896044618658097711785492504343953926634992332820282019728.792003956564819968 ether"
    assert format_amount(2**255) == huge  # exact: no rounding past 28 digits


def test_addresses_must_be_well_formed_and_correctly_cased() -> None:
    """One case or a correct checksum passes (checksummed out); a wrong checksum or a short address does not."""
    address = dev_account(PAYER).address
    assert checked_address(address.lower()) == address
    assert checked_address(address) == address
    letter = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    wrong = address[:letter] + address[letter].swapcase() + address[letter + 1:]  # one letter's case flipped
    for bad in (wrong, address[:-2], address[2:]):
        with pytest.raises(ConfigurationError, match="is not an address"):
            checked_address(bad)


def test_on_a_zero_gas_price_network_a_signer_without_ether_can_pay() -> None:
    """Gas price 0 (a free-gas Besu network): nothing is needed, so an empty account counts as funded."""
    funding = Funding(Account.create().address, balance=0, gas_price=0, gas=WRITE_GAS)
    assert (funding.needed, funding.funded) == (0, True)
    assert Funding(funding.address, balance=0, gas_price=0, gas=WRITE_GAS, value=1).funded is False


def test_a_fresh_signer_cannot_pay_and_the_error_names_the_fund_command(w3: Web3, ganache: LocalNode) -> None:
    """0 wei against the chain's gas price: InsufficientFundsError with balance, need and the `chain fund` command."""
    fresh = Account.create().address
    funds = SignerFunds(w3, fresh, ChainParams(w3))
    funding = funds.funding()
    assert (funding.balance, funding.gas, funding.funded) == (0, WRITE_GAS, False)
    assert funding.needed == WRITE_GAS * w3.eth.gas_price > 0
    with pytest.raises(InsufficientFundsError) as refused:
        funds.require()
    error = refused.value
    command = f"consentledger chain fund {fresh} --amount 1ether --rpc {ganache.rpc_url} --dev-account 0"
    assert error.fund_command == command
    assert str(error) == (f"signer {fresh} has 0 wei; needs ≥ {format_amount(funding.needed)} "
                          f"({WRITE_GAS:,} gas at gas price {format_amount(funding.gas_price)}); run {command}")
    assert (error.http_status, error.exit_code, error.code) == (503, 24, "insufficient_funds")
    assert error.fields()["balance"] == "0" and error.fields()["needed"] == str(funding.needed)


def test_a_signer_refused_for_funds_is_read_again_at_once_once_funded(w3: Web3, ganache: LocalNode) -> None:
    """An insufficient balance is never served from the cache, even with a long TTL: the next check after funding
    passes; a sufficient one is."""
    fresh = Account.create().address
    funds = SignerFunds(w3, fresh, ChainParams(w3), ttl=3600)
    with pytest.raises(InsufficientFundsError):
        funds.require()
    sent = fund(ganache.rpc_url, dev_account(PAYER), fresh, 10**17)
    assert sent.balance == 10**17 and w3.eth.get_balance(fresh) == 10**17  # type: ignore[arg-type]
    funds.require()
    assert funds.funding().balance == 10**17


def test_a_transfer_pays_the_amount_and_returns_the_new_balance(w3: Web3, ganache: LocalNode) -> None:
    """Two transfers add up at the recipient; each is mined in its own block."""
    payer, to = dev_account(PAYER), Account.create().address
    first = fund(ganache.rpc_url, payer, to, parse_amount("0.5 ether"))
    second = fund(ganache.rpc_url, payer, to.lower(), parse_amount("250000gwei"))
    assert (first.balance, second.balance) == (5 * 10**17, 5 * 10**17 + 25 * 10**13)
    assert second.to == to and second.payer == payer.address and second.block > first.block
    assert w3.eth.get_transaction_receipt(second.tx_hash)["status"] == 1  # type: ignore[arg-type]


def test_a_payer_short_of_amount_plus_gas_sends_nothing(w3: Web3) -> None:
    """A payer holding exactly the amount cannot pay the gas too: InsufficientFundsError, no nonce used."""
    poor = Account.create()
    send_value(TransactionSender(w3, dev_account(PAYER), RevertDecoder([])), poor.address, 10**15)
    sender = TransactionSender(w3, poor, RevertDecoder([]))
    with pytest.raises(InsufficientFundsError, match=f"payer {poor.address} has 0.001 ether; sending 0.001 ether"):
        send_value(sender, Account.create().address, 10**15)
    assert w3.eth.get_transaction_count(poor.address, "pending") == 0


def test_paying_a_contract_or_oneself_is_refused(w3: Web3, ganache: LocalNode) -> None:
    """Signers are plain accounts: a contract's address, or the payer's own, is a ConfigurationError; nothing sent."""
    payer = dev_account(PAYER)
    # The smallest contract: its init code returns one byte (STOP) as the runtime code.
    deployed = w3.eth.send_transaction({"from": payer.address, "data": "0x60016000f3"})  # ganache's unlocked account
    contract = w3.eth.get_transaction_receipt(deployed)["contractAddress"]
    assert contract is not None and w3.eth.get_code(contract) == b"\x00"
    before = w3.eth.get_transaction_count(payer.address, "pending")
    with pytest.raises(ConfigurationError, match="is a contract"):
        fund(ganache.rpc_url, payer, contract, 1)
    with pytest.raises(ConfigurationError, match="same account"):
        fund(ganache.rpc_url, payer, payer.address, 1)
    assert w3.eth.get_transaction_count(payer.address, "pending") == before


def test_a_refusal_by_the_node_for_a_signer_with_enough_for_a_typical_write_says_this_one_costs_more(
    w3: Web3,
) -> None:
    """A node may refuse a large transaction (a deployment, a big batch) of a signer that could pay a typical write:
    the error does not claim it needs less than it has."""
    payer = dev_account(PAYER)
    funds = SignerFunds(w3, payer.address, ChainParams(w3))
    funding = funds.funding()
    error = funds.error(funding, node="insufficient funds for gas * price + value")
    assert str(error).startswith(f"the node refused the transaction (insufficient funds for gas * price + value): "
                                 f"signer {payer.address} has {format_amount(funding.balance)}, too little for this "
                                 "transaction at gas price 2 gwei; run consentledger chain fund")
