"""Refusal reasons: every custom error of the contracts decodes by name from its revert data and has a sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from consentledger import audit
from consentledger.chain.compile import compile_contracts

INTERFACES = Path(__file__).parents[2] / "contracts" / "interfaces"


@pytest.fixture(scope="module")
def rules() -> audit.RuleDecoder:
    """A decoder over the two ABIs the indexer reads (Consortium and AccessLedger)."""
    artifacts = compile_contracts()
    return audit.RuleDecoder([artifacts["Consortium"].abi, artifacts["AccessLedger"].abi])


def declared_errors() -> set[str]:
    """Return the name of every custom error declared in contracts/interfaces/*.sol."""
    return {name for path in INTERFACES.glob("*.sol")
            for name in re.findall(r"^\s*error\s+(\w+)\s*\(", path.read_text(), flags=re.MULTILINE)}


def test_every_declared_error_has_a_plain_sentence() -> None:
    """Each error of the interfaces maps to a short sentence; an unknown rule still reads as a sentence."""
    declared = declared_errors()
    assert len(declared) > 40 and declared <= set(audit.RULE_SENTENCES)
    assert audit.explain("ConsentRegistryConsentRevoked") == "the consent was revoked"
    assert audit.explain("0xdeadbeef") == "the contract refused it (rule 0xdeadbeef)"


def test_the_decoder_names_every_declared_error(rules: audit.RuleDecoder) -> None:
    """The two ABIs the indexer reads declare every interface error (bubbled ones included)."""
    assert declared_errors() <= rules.names()


def test_a_reason_decodes_to_the_rule_and_its_named_arguments(rules: audit.RuleDecoder) -> None:
    """ConsentRegistryConsentExhausted(consent, uses, maxUses) gives its name and arguments by name."""
    selector = function_signature_to_4byte_selector("ConsentRegistryConsentExhausted(bytes32,uint32,uint32)")
    reason = selector + encode(["bytes32", "uint32", "uint32"], [b"\x11" * 32, 3, 3])

    rule = rules.decode(selector, reason)

    assert rule == audit.Rule("ConsentRegistryConsentExhausted",
                              {"consent": "0x" + "11" * 32, "uses": 3, "maxUses": 3})


def test_unknown_or_malformed_reasons_keep_what_is_known(rules: audit.RuleDecoder) -> None:
    """An unknown selector is kept as hex; a known one with broken arguments keeps its name; Error(string) reads."""
    assert rules.decode("0xdeadbeef", "0xdeadbeef0102") == audit.Rule("0xdeadbeef")
    missing_role = function_signature_to_4byte_selector("ConsortiumMissingRole(address,uint8)")
    assert rules.decode(missing_role, missing_role + b"\x01") == audit.Rule("ConsortiumMissingRole")
    assert rules.decode(missing_role, b"") == audit.Rule("ConsortiumMissingRole")
    error = bytes.fromhex("08c379a0") + encode(["string"], ["no"])
    assert rules.decode(error[:4], error) == audit.Rule("Error", {"message": "no"})
