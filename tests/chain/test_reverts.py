"""Revert data decoded against the real contracts' ABIs: the rule by name, its arguments by name, enums named."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from consentledger.chain.compile import compile_contracts
from consentledger.chain.reverts import RevertDecoder
from consentledger.types import MemberStatus, Role, TombstoneReason

ACCOUNT = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def revert(signature: str, types: list[str], values: list[object]) -> bytes:
    """Return the revert data of custom error `signature` with `values`."""
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def decoder() -> RevertDecoder:
    """A decoder of every contract's custom errors, as a Ledger builds it."""
    return RevertDecoder(a.abi for a in compile_contracts().values())


def test_role_bits_and_enums_are_shown_by_name_with_the_arguments_names() -> None:
    """ConsortiumMissingRole's uint8 role, MemberStatus and TombstoneReason print as names; addresses checksummed."""
    decode = decoder().decode
    missing = decode(revert("ConsortiumMissingRole(address,uint8)", ["address", "uint8"], [ACCOUNT.lower(), 2]))
    assert str(missing) == f"ConsortiumMissingRole(account={ACCOUNT}, role=CUSTODIAN)"
    assert missing.rule_args == (ACCOUNT, Role.CUSTODIAN) and missing.arg_names == ("account", "role")
    inactive = decode(revert("ConsortiumMemberNotActive(address,uint8)", ["address", "uint8"], [ACCOUNT, 2]))
    assert str(inactive) == f"ConsortiumMemberNotActive(account={ACCOUNT}, status=SUSPENDED)"
    assert inactive.rule_args[1] is MemberStatus.SUSPENDED
    record = bytes(range(32))
    gone = decode(revert("RecordRegistryRecordTombstoned(bytes32,uint8)", ["bytes32", "uint8"], [record, 2]))
    assert str(gone) == f"RecordRegistryRecordTombstoned(record=0x{record.hex()}, reason=ERASURE)"
    assert gone.rule_args[1] is TombstoneReason.ERASURE


def test_several_roles_strings_and_unknown_enum_values_stay_readable() -> None:
    """Role combinations join their names, strings are quoted, a value no enum member has stays a number."""
    decode = decoder().decode
    roles = decode(revert("ConsortiumInvalidRoles(uint8)", ["uint8"], [6]))
    assert str(roles) == "ConsortiumInvalidRoles(roles=CUSTODIAN|REQUESTER)"
    terms = decode(revert("ConsentRegistryInvalidTerms(bytes32,string)", ["bytes32", "string"], [bytes(32), "no uses"]))
    assert str(terms) == f"ConsentRegistryInvalidTerms(consent=0x{'00' * 32}, reason='no uses')"
    odd = decode(revert("ConsortiumMemberNotActive(address,uint8)", ["address", "uint8"], [ACCOUNT, 9]))
    assert str(odd) == f"ConsortiumMemberNotActive(account={ACCOUNT}, status=9)"
