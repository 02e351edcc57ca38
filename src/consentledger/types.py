"""Value types shared across consentledger: ids, enums mirroring the contracts, frozen records."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import NewType

from consentledger.errors import ContractRevertError

Address = NewType("Address", str)
"""A checksummed 0x-prefixed Ethereum address."""

RecordId = NewType("RecordId", bytes)
"""A 32-byte record id chosen by the custodian."""

ConsentId = NewType("ConsentId", bytes)
"""A consent's EIP-712 digest (32 bytes)."""

ActorId = NewType("ActorId", bytes)
"""An acting client's pseudonym on chain: keccak256(abi.encode(client address, salt)), 32 bytes."""

NO_ACTOR = ActorId(bytes(32))
"""The actor of an access the organisation made with its own signer key, not through a registered client."""


class Role(IntFlag):
    """Member role bits (contracts/interfaces/Roles.sol); EMERGENCY lets a requester record emergency overrides."""

    ADMIN = 1
    CUSTODIAN = 2
    REQUESTER = 4
    AUDITOR = 8
    EMERGENCY = 16

    @classmethod
    def parse(cls, text: str) -> Role:
        """Return the roles named in a comma-separated list such as "custodian,requester"."""
        roles = cls(0)
        for name in filter(None, (part.strip() for part in text.split(","))):
            try:
                roles |= cls[name.upper()]
            except KeyError:
                raise ValueError(f"unknown role {name!r} (admin, custodian, requester, auditor, emergency)") from None
        if not roles:
            raise ValueError("at least one role is required")
        return roles

    def label(self) -> str:
        """Return the roles as a comma-separated lower-case list."""
        return ",".join(r.name.lower() for r in Role if r in self and r.name)


class MemberStatus(IntEnum):
    """A member's standing (IConsortium.MemberStatus)."""

    NONE = 0
    ACTIVE = 1
    SUSPENDED = 2
    REVOKED = 3


class Sensitivity(IntEnum):
    """A category's protection tier (IDataCatalog.Sensitivity)."""

    OPEN = 0
    ONE_TIME = 1
    PROTECTED = 2


class TombstoneReason(IntEnum):
    """Why a record was destroyed (IRecordRegistry.TombstoneReason)."""

    NONE = 0
    RETENTION = 1
    ERASURE = 2
    SUNSET = 3
    CUSTODIAN = 4
    SOURCE_DESTROYED = 5  # a derived record or aggregate destroyed because an original source was tombstoned


class RecordKind(IntEnum):
    """What a record is (IRecordRegistry.RecordKind): about one subject, derived, or an anonymous aggregate."""

    PLAIN = 0
    DERIVED = 1
    AGGREGATE = 2


class Action(IntEnum):
    """What a governance proposal does (IConsortium.Action)."""

    ADMIT_MEMBER = 0
    SUSPEND_MEMBER = 1
    REINSTATE_MEMBER = 2
    REVOKE_MEMBER = 3
    SET_ROLES = 4
    SET_MEMBER_KEYS = 5
    SET_THRESHOLD = 6
    ADD_CATEGORY = 7
    SET_CATEGORY_PURPOSES = 8
    ADD_PURPOSE = 9
    SET_PURPOSE_SUNSET = 10
    ROTATE_SIGNER = 11
    GRANT_MANDATE = 12
    REVOKE_MANDATE = 13
    SET_OVERRIDE_POLICY = 14


class LegalBasis(IntEnum):
    """What an access was granted under (IAccessLedger.LegalBasis); the entry's `consent` word names it."""

    CONSENT = 0
    """The subject's consent(s); none for an OPEN category or an anonymous aggregate."""
    MANDATE = 1
    """A statutory mandate granted by governance; the word is the mandate id."""
    OVERRIDE = 2
    """An emergency override, reviewed afterwards; the word is the justification's keccak256."""


class ReviewStatus(IntEnum):
    """Where an emergency override's review stands (IAccessLedger.ReviewStatus)."""

    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    REJECTED = 3


class ConsentStatus(IntEnum):
    """Lifecycle of a consent id (IConsentRegistry.ConsentStatus)."""

    NONE = 0
    GRANTED = 1
    REVOKED = 2


@dataclass(frozen=True)
class Member:
    """A member organisation as the Consortium stores it."""

    address: Address
    roles: Role
    status: MemberStatus
    since: int
    x25519_key: bytes
    name: str
    gateway_url: str


@dataclass(frozen=True)
class Category:
    """A category of the positive list."""

    id: int
    name: str
    sensitivity: Sensitivity
    retention: int
    min_aggregate_subjects: int
    allowed_purposes: tuple[int, ...]
    fields: tuple[str, ...]
    identifying_fields: tuple[str, ...]


@dataclass(frozen=True)
class Purpose:
    """A purpose of use; sunset 0 means none."""

    id: int
    name: str
    sunset: int


@dataclass(frozen=True)
class Proposal:
    """A governance proposal."""

    id: int
    action: Action
    approvals: int
    executed: bool
    deadline: int
    proposer: Address
    payload: bytes


@dataclass(frozen=True)
class RecordInfo:
    """What the chain knows of an off-chain record."""

    id: RecordId
    custodian: Address
    subject: Address
    category: int
    created_at: int
    retain_until: int
    tombstone: TombstoneReason
    commitment: bytes
    derived_from: tuple[RecordId, ...]
    accesses: int
    kind: RecordKind = RecordKind.PLAIN
    attested: bool = False
    """Whether the subject confirmed the record with their own signature (attestRecord)."""


@dataclass(frozen=True)
class AccessEntry:
    """One link of a record's hash chain, as emitted by AccessRecorded."""

    record: RecordId
    seq: int
    requester: Address
    purpose: int
    consent: bytes
    head: bytes
    timestamp: int
    block_number: int
    tx_hash: bytes
    identified: bool = False
    """Whether the custodian may release identifying fields (every presented consent allows it)."""
    actor: ActorId = NO_ACTOR
    """The requester's acting client, pseudonymous (`consentledger.actors`); zero when the organisation acted."""
    basis: LegalBasis = LegalBasis.CONSENT
    """The legal basis the access was granted under; `consent` names it (see LegalBasis)."""

    @property
    def mandate(self) -> int | None:
        """Return the mandate id of an access under a statutory mandate (None otherwise)."""
        return int.from_bytes(self.consent, "big") if self.basis is LegalBasis.MANDATE else None


@dataclass(frozen=True)
class Mandate:
    """A statutory mandate (ILegalBases.Mandate): an institution may use categories for a purpose until a date."""

    id: int
    institution: Address
    purpose: int
    categories: tuple[int, ...]
    valid_until: int
    identified: bool
    revoked: bool
    legal_text_hash: bytes
    legal_text_uri: str


@dataclass(frozen=True)
class OverridePolicy:
    """The consortium's emergency-override rules (ILegalBases.OverridePolicy); all zero: no override allowed."""

    purposes: tuple[int, ...]
    """The vital-interest purposes an override may name."""
    review_period: int
    """Seconds within which an auditor must review each override."""
    max_overrides: int = 0
    """Most overrides one agency may record per `rate_window` seconds (0: no limit); the audit reports above it."""
    rate_window: int = 0


@dataclass(frozen=True)
class OverrideState:
    """An emergency override's review (IAccessLedger.OverrideState); status NONE: the access is no override."""

    requester: Address
    recorded_at: int
    review_due: int
    status: ReviewStatus


@dataclass(frozen=True)
class AccessRefusal:
    """An access asked for in a batch that a rule refused, as emitted by AccessRefused (nothing of it changed)."""

    record: RecordId
    requester: Address
    purpose: int
    actor: ActorId
    rule: str
    """The custom error's name, as ContractRevertError.rule of the single-access path."""
    rule_args: tuple[object, ...]
    block_number: int
    tx_hash: bytes
    rule_arg_names: tuple[str, ...] = field(default=(), compare=False)
    """The arguments' names in the contract's ABI, for the error's message."""

    def error(self) -> ContractRevertError:
        """Return the ContractRevertError a single `requestAccess` breaking this rule raises."""
        return ContractRevertError(self.rule, self.rule_args, arg_names=self.rule_arg_names)
