"""What a requester asks a custodian to release: one access on chain, its consents' terms and the withholding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consentledger.consent import Consent
from consentledger.crypto.disclosure import Withholding


@dataclass(frozen=True)
class KeyRequest:
    """The release of access (record, seq) mined in `block`, with the terms of the consents it presented, in order."""

    record_id: bytes
    seq: int
    block: int
    withhold: Withholding = Withholding.REMOVE
    consents: tuple[Consent, ...] = ()

    @property
    def record(self) -> str:
        """Return the record's 0x id."""
        return "0x" + self.record_id.hex()

    def to_json(self, *, with_access: bool = True) -> dict[str, Any]:
        """Return the request as POST /v1/keys/batch carries it (without record and seq: as the single path's body)."""
        body: dict[str, Any] = {"record": self.record, "seq": self.seq} if with_access else {}
        return {**body, "block": self.block, "withhold": self.withhold.value,
                "consents": [c.to_json() for c in self.consents]}
