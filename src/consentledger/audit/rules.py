"""The contract rules a refused access broke: decoded from its revert data, and said in plain words.

An AccessRefused event carries the custom error's selector (`rule`) and its full data (`reason`).
`RuleDecoder` names the error and its arguments from the contracts' ABIs (as chain/reverts.py
does for a failed transaction, but keeping each argument's name, which the audit page shows);
`explain` turns the name into a short sentence for the page and the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector
from eth_utils.abi import collapse_if_tuple

from consentledger.audit.events import hex_bytes, json_value

RULE_SENTENCES: Mapping[str, str] = {
    # AccessLedger
    "AccessLedgerRetentionExpired": "the record's retention period was over",
    "AccessLedgerConsentCountMismatch": "the number of consents did not match what the record needs",
    "AccessLedgerMissingSourceConsent": "a source record's subject gave no consent",
    "AccessLedgerSourceUnavailable": "a source record was destroyed",
    "AccessLedgerBatchEmpty": "the batch held no request",
    "AccessLedgerBatchTooLarge": "the batch held too many requests",
    "AccessLedgerBatchItemFailed": "the request failed without a rule",
    "AccessLedgerSelfCallOnly": "only the ledger itself may record a batch item",
    "AccessLedgerNoJustification": "the emergency override gave no justification",
    "AccessLedgerNotAnOverride": "the access is not an emergency override",
    "AccessLedgerOverrideAlreadyReviewed": "the override was reviewed already",
    "AccessLedgerInvalidReviewReason": "the review's reason is empty or too long",
    "AccessLedgerSelfReview": "an auditor may not review its own organisation's override",
    # ConsentRegistry
    "ConsentRegistryInvalidSignature": "the consent's signature is not the subject's",
    "ConsentRegistryAlreadyGranted": "the consent was already registered",
    "ConsentRegistryConsentRevoked": "the consent was revoked",
    "ConsentRegistryNotGranted": "the consent was never granted",
    "ConsentRegistryConsentExpired": "the consent had expired",
    "ConsentRegistryConsentExhausted": "the consent's uses were used up",
    "ConsentRegistryWrongGrantee": "the consent was given to another organisation",
    "ConsentRegistryWrongPurpose": "the consent is for another purpose",
    "ConsentRegistryWrongScope": "the consent does not cover this record",
    "ConsentRegistryWrongSubject": "the consent was given by someone other than the record's subject",
    "ConsentRegistryRecordScopeRequired": "the category needs a consent naming this very record",
    "ConsentRegistryNotSubject": "only the subject may do this",
    "ConsentRegistryInvalidTerms": "the consent's terms are unusable",
    # Consortium
    "ConsortiumMemberNotActive": "the organisation is not an active member",
    "ConsortiumMissingRole": "the organisation lacks the requester role",
    "ConsortiumAlreadyMember": "the account is already a member",
    "ConsortiumInvalidStatus": "the member cannot change to that status",
    "ConsortiumInvalidRoles": "the roles are not valid",
    "ConsortiumZeroAddress": "the account is the zero address",
    "ConsortiumInvalidThreshold": "the approval threshold is not valid",
    "ConsortiumUnknownProposal": "there is no such proposal",
    "ConsortiumProposalExecuted": "the proposal was already executed",
    "ConsortiumProposalExpired": "the proposal's voting period had ended",
    "ConsortiumAlreadyApproved": "the admin had already approved the proposal",
    "ConsortiumThresholdNotReached": "the proposal lacks approvals",
    "ConsortiumMemberInvalidConsortium": "the consortium address is not valid",
    # DataCatalog
    "DataCatalogUnknownCategory": "the record's category does not exist",
    "DataCatalogCategoryExists": "the category already exists",
    "DataCatalogInvalidCategory": "the category is not valid",
    "DataCatalogUnknownPurpose": "the purpose does not exist",
    "DataCatalogPurposeExists": "the purpose already exists",
    "DataCatalogInvalidPurposeId": "the purpose id is not valid",
    "DataCatalogPurposeNotAllowed": "the purpose is not allowed for the record's category",
    "DataCatalogPurposeSunset": "the purpose had reached its sunset",
    # LegalBases (in the Consortium)
    "LegalBasesUnknownMandate": "no such statutory mandate exists",
    "LegalBasesInvalidMandate": "the mandate is not valid",
    "LegalBasesMandateRevoked": "governance had revoked the mandate",
    "LegalBasesMandateExpired": "the mandate had ended",
    "LegalBasesMandateNotHolder": "the mandate was granted to another institution",
    "LegalBasesMandateWrongPurpose": "the mandate is for another purpose",
    "LegalBasesMandateWrongCategory": "the mandate does not cover the record's category",
    "LegalBasesNotOverridePurpose": "emergency overrides are not allowed for this purpose",
    "LegalBasesInvalidOverridePolicy": "the override policy is not valid",
    # RecordRegistry
    "RecordRegistryUnknownRecord": "the record does not exist",
    "RecordRegistryRecordExists": "the record already exists",
    "RecordRegistryInvalidRecord": "the record is not valid",
    "RecordRegistryTooManySources": "the record lists too many sources",
    "RecordRegistryRecordTombstoned": "the record was destroyed",
    "RecordRegistrySourceExpired": "a source record's retention period was over",
    "RecordRegistryNotCustodian": "only the record's custodian may do this",
    "RecordRegistryTooFewSubjects": "the aggregate covers too few subjects",
    "RecordRegistryInvalidAttestation": "the attestation is not the subject's",
    "RecordRegistryAlreadyAttested": "the record was already attested",
    # Solidity's own
    "Error": "the contract refused it",
    "Panic": "the contract failed",
}
"""A short sentence for each custom error of contracts/interfaces/*.sol (and Solidity's Error and Panic)."""

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


def explain(rule: str) -> str:
    """Return why an access was refused, in plain words, for the rule (error name or selector hex)."""
    return RULE_SENTENCES.get(rule, f"the contract refused it (rule {rule})")


@dataclass(frozen=True)
class Rule:
    """A decoded refusal reason: the error's name (its selector in hex when unknown) and named arguments."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _ErrorLayout:
    name: str
    inputs: tuple[tuple[str, str], ...]


class RuleDecoder:
    """Decodes custom errors of the given ABIs, keyed by selector, keeping the arguments' names."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        self._errors: dict[bytes, _ErrorLayout] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                inputs = tuple(
                    (i.get("name") or f"arg{n}", collapse_if_tuple(dict(i)))
                    for n, i in enumerate(item.get("inputs", []))
                )
                signature = f"{item['name']}({','.join(kind for _, kind in inputs)})"
                self._errors[bytes(function_signature_to_4byte_selector(signature))] = _ErrorLayout(
                    str(item["name"]), inputs
                )

    def names(self) -> frozenset[str]:
        """Return the name of every error these ABIs declare."""
        return frozenset(e.name for e in self._errors.values())

    def decode(self, rule: str | bytes, reason: str | bytes) -> Rule:
        """Return the rule of `reason` (full error data); `rule` (the selector) names it if `reason` is short."""
        data = hex_bytes(reason)
        selector = data[:4] if len(data) >= 4 else hex_bytes(rule)[:4]
        body = data[4:]
        layout = self._errors.get(selector)
        if layout is not None:
            try:
                values = decode([kind for _, kind in layout.inputs], body)
            except Exception:  # malformed arguments: still name the rule
                return Rule(layout.name)
            return Rule(layout.name, {
                name: _plain(json_value(kind, value)) for (name, kind), value in zip(layout.inputs, values, strict=True)
            })
        try:
            if selector == _ERROR_STRING:
                return Rule("Error", {"message": decode(["string"], body)[0]})
            if selector == _PANIC:
                return Rule("Panic", {"code": decode(["uint256"], body)[0]})
        except Exception:
            pass
        return Rule("0x" + selector.hex())


def _plain(value: Any) -> Any:
    """Return JSON-safe data: integers beyond 2**53 as decimal strings (a JSON reader may round them)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= 2**53:
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
