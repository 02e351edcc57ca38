"""Request bodies of the gateway API, validated from the exact bytes that were signed."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consentledger.crypto.disclosure import Withholding
from consentledger.errors import PayloadValidationError

Hex32 = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
AddressField = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordIn(_Body):
    """POST /v1/records: a record about `subject`, derived from others, or an anonymous `aggregate` of them."""

    subject: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    category: int = Field(ge=1, le=65535)
    payload: dict[str, Any]
    derived_from: list[Annotated[str, Hex32]] = Field(default_factory=list, max_length=32)
    aggregate: bool = False

    @model_validator(mode="after")
    def _subject_matches_kind(self) -> RecordIn:
        if self.aggregate and (self.subject is not None or not self.derived_from):
            raise ValueError("an anonymous aggregate has derived_from sources and no subject")
        if not self.aggregate and self.subject is None and not self.derived_from:
            raise ValueError("a record needs a subject (or derived_from sources)")
        return self


class ConsentTerms(_Body):
    """A consent's terms, as `Consent.to_json()` writes them."""

    subject: str = AddressField
    grantee: str = AddressField
    category: int = Field(ge=0, le=65535)
    purpose: int = Field(ge=0, le=255)
    valid_until: int = Field(ge=0, lt=2**40)
    max_uses: int = Field(ge=0, lt=2**32)
    record: str = Field("0x" + "00" * 32, pattern=r"^0x[0-9a-fA-F]{64}$")
    identified: bool = False
    nonce: int = Field(0, ge=0, lt=2**64)


class SignedConsentIn(_Body):
    """POST /v1/consents and /v1/consents/revoke: terms plus the subject's signature."""

    consent: ConsentTerms
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class AttestationIn(_Body):
    """POST /v1/records/{id}/attestation: the subject's EIP-712 RecordAttestation signature."""

    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class ErasureIn(_Body):
    """POST /v1/subjects/me/erasure: the subject's signed revocation of each of their live consents."""

    revocations: list[SignedConsentIn] = Field(default_factory=list, max_length=1000)


class SweepIn(_Body):
    """POST /v1/sweep: how many records to shred per database transaction (None: the configured batch)."""

    batch: int | None = Field(None, ge=1, le=10_000)


class OverrideIn(_Body):
    """An emergency override's justification: kept by this agency, its salted hash recorded on chain."""

    justification: str = Field(min_length=1, max_length=4096, description="Why consent could not be asked for")


class ConsentAccessIn(_Body):
    """One access under consent (or none, for an OPEN category or an anonymous aggregate); `withhold` says what
    becomes of identifying fields an unidentified access may not see."""

    record: str = Hex32
    purpose: int = Field(ge=1, le=127)
    consents: list[ConsentTerms] = Field(default_factory=list, max_length=32)
    withhold: Withholding = Withholding.REMOVE

    @model_validator(mode="before")
    @classmethod
    def _consent_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("mandate" in data or "override" in data):
            raise ValueError("an access under a mandate or by override is asked alone: POST /v1/access")
        return data


class AccessIn(_Body):
    """POST /v1/access under exactly one legal basis: `consents` (the default: none for an OPEN category), a
    statutory `mandate` id, or an emergency `override` with its justification (the client needs the emergency
    role); `withhold` says what becomes of identifying fields an unidentified access may not see."""

    record: str = Hex32
    purpose: int = Field(ge=1, le=127)
    consents: list[ConsentTerms] = Field(default_factory=list, max_length=32)
    mandate: int | None = Field(None, ge=1, lt=2**256, description="A statutory mandate's id (instead of consents)")
    override: OverrideIn | None = Field(None, description="An emergency override (instead of consents)")
    withhold: Withholding = Withholding.REMOVE

    @model_validator(mode="after")
    def _one_basis(self) -> AccessIn:
        given = [name for name in ("consents", "mandate", "override") if name in self.model_fields_set]
        if len(given) > 1:
            raise ValueError(f"give one legal basis: consents, mandate or override (not {' and '.join(given)})")
        return self


class AccessBatchIn(_Body):
    """POST /v1/access/batch: many accesses under consent, recorded on chain together and answered one by one."""

    items: list[ConsentAccessIn] = Field(min_length=1)  # at most `max_batch_items` (413 above)


class AccessResumeIn(_Body):
    """POST /v1/access/resume: an access on chain (record, seq) to answer again, with the terms of the consents it
    presented (in order; none for an access under a mandate or by override, whose basis the chain names) and what
    becomes of identifying fields it may not see."""

    record: str = Hex32
    seq: int = Field(ge=1, lt=2**24, description="The access's seq (AccessRecorded.seq, a uint24)")
    consents: list[ConsentTerms] = Field(default_factory=list, max_length=32)
    withhold: Withholding = Withholding.REMOVE

    @model_validator(mode="before")
    @classmethod
    def _no_basis(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("mandate" in data or "override" in data):
            raise ValueError("a resume names no mandate or override: the entry on chain holds its basis "
                             "(send {record, seq} and, for a consent access, its consents)")
        return data


class KeyRequestIn(_Body):
    """POST /v1/keys/{record}/{seq}: the block the access was mined in, how to withhold identifying fields, and
    the terms of the consents the access presented (in order), which the custodian checks are still valid."""

    block: int = Field(ge=0)
    withhold: Withholding = Withholding.REMOVE
    consents: list[ConsentTerms] = Field(default_factory=list, max_length=32)


class KeyItemIn(KeyRequestIn):
    """One item of POST /v1/keys/batch: the access (record, seq) and what its single request's body says."""

    record: str = Hex32
    seq: int = Field(ge=1, lt=2**24, description="The access's seq (AccessRecorded.seq, a uint24)")


class KeyBatchIn(_Body):
    """POST /v1/keys/batch: one requester's accesses whose keys it asks for (at most `max_batch_items`)."""

    items: list[KeyItemIn] = Field(min_length=1)


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: bytes) -> M:
    """Validate `body` as `model`; PayloadValidationError (422) naming each problem."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise PayloadValidationError(problems) from None


class DenyRequestIn(_Body):
    """POST /v1/subjects/me/consent-requests/{id}/deny: nothing more to say (an empty body or `{}`)."""


class PageSessionIn(_Body):
    """POST /v1/audit/session: which view of the audit page (None: the auditor's if the signer is one)."""

    view: Literal["audit", "subject"] | None = None


class RecordOut(BaseModel):
    """What POST /v1/records and GET /v1/records/{id} answer: a stored record's metadata, never its content."""

    record: str = Field(description="0x-prefixed 32-byte record id")
    state: Literal["pending", "registered", "shredded"]
    commitment: str = Field(description="0x-prefixed commitment registered on chain")
    category: int
    subject: str | None = Field(description="The data subject's address (None for an anonymous aggregate)")
    derived_from: list[str]
