"""What the portal page sends: JSON bodies, numbers past 2^53 as decimal strings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from consentledger.gateway.flows.portal.actions import PortalNarrowing
from consentledger.gateway.schemas import ConsentTerms

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
SIGNATURE = r"^0x[0-9a-fA-F]{130}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChallengeIn(_Body):
    """POST /portal/api/challenge: who is signing in."""

    subject: str = Field(pattern=ADDRESS)


class SessionIn(_Body):
    """POST /portal/api/session: the challenge and the wallet's signature over its typed data."""

    challenge: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    signature: str = Field(pattern=SIGNATURE)


class NarrowingIn(_Body):
    """POST /portal/api/requests/{gateway}/{id}/consent: the narrowing chosen (terms left out: as asked)."""

    valid_until: str | None = Field(None, pattern=r"^[0-9]{1,13}$", description="unix seconds, below 2^40")
    max_uses: str | None = Field(None, pattern=r"^[1-9][0-9]{0,9}$", description="1 or more, below 2^32")
    identified: bool | None = None
    record: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{64}$")

    @model_validator(mode="after")
    def _in_range(self) -> NarrowingIn:
        if self.valid_until is not None and int(self.valid_until) >= 2**40:
            raise ValueError("valid_until: a uint40 is below 2^40")
        if self.max_uses is not None and int(self.max_uses) >= 2**32:
            raise ValueError("max_uses: a uint32 is below 2^32")
        return self

    def narrowing(self) -> PortalNarrowing:
        """Return the narrowing as numbers."""
        return PortalNarrowing(
            valid_until=None if self.valid_until is None else int(self.valid_until),
            max_uses=None if self.max_uses is None else int(self.max_uses),
            identified=self.identified, record=self.record,
        )


class GrantIn(NarrowingIn):
    """POST /portal/api/requests/{gateway}/{id}/grant: the narrowing, the nonce and the wallet's signature."""

    nonce: str = Field(pattern=r"^[0-9]{1,20}$")
    signature: str = Field(pattern=SIGNATURE)

    @model_validator(mode="after")
    def _nonce_in_range(self) -> GrantIn:
        if int(self.nonce) >= 2**64:
            raise ValueError("nonce: a uint64 is below 2^64")
        return self


class DenyIn(_Body):
    """POST /portal/api/requests/{gateway}/{id}/deny: nothing more to say."""


class RevocationIn(_Body):
    """A consent's terms as the overview gives them, and the wallet's `Revocation` signature."""

    consent: ConsentTerms
    signature: str = Field(pattern=SIGNATURE)


class ErasureIn(_Body):
    """POST /portal/api/erasure: a signed revocation of each live consent."""

    revocations: list[RevocationIn] = Field(default_factory=list, max_length=1000)
