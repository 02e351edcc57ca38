"""Statutory mandates as an operator handles them: names resolved, terms checked as the chain will, states.

A mandate is granted only when its governance proposal runs, so a proposal the Consortium would refuse
at that point (LegalBasesInvalidMandate, ConsortiumMemberNotActive, ConsortiumMissingRole) is found here
first, from the chain as of its latest block, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from eth_utils import is_address, keccak, to_checksum_address

from consentledger.catalog import Catalog, iso
from consentledger.errors import NotFoundError, PayloadValidationError
from consentledger.types import Category, Mandate, Member, MemberStatus, Purpose, Role

if TYPE_CHECKING:
    from consentledger.chain.ledger import Ledger

MAX_MANDATE_CATEGORIES = 32
"""LegalBases.MAX_MANDATE_CATEGORIES: most categories one mandate may cover."""

IN_FORCE, EXPIRED, REVOKED, PURPOSE_ENDED = "in force", "expired", "revoked", "purpose ended"


@dataclass(frozen=True)
class Directory:
    """The members and the positive list as of one block, to find them by name or id."""

    members: tuple[Member, ...]
    catalog: Catalog

    @property
    def now(self) -> int:
        """Return the timestamp of the block the directory was read at (the chain's clock)."""
        return self.catalog.block_time

    def member(self, text: str) -> Member:
        """Return the member with this address or name (case-insensitive); NotFoundError if none."""
        wanted = text.strip()
        if is_address(wanted):
            address = to_checksum_address(wanted)
            found = next((m for m in self.members if m.address == address), None)
        else:
            found = next((m for m in self.members if m.name.lower() == wanted.lower()), None)
        if found is None:
            known = ", ".join(m.name or m.address for m in self.members) or "none"
            raise NotFoundError(f"no member {text!r}; the members: {known}")
        return found

    def name_of(self, address: str) -> str:
        """Return the name of the member at `address`, or the address if it has none or is no member."""
        return next((m.name for m in self.members if m.address == address and m.name), address)

    def purpose(self, text: str) -> Purpose:
        """Return the purpose with this id or name; NotFoundError if none."""
        return _find(self.catalog.purposes, text, "purpose")

    def categories(self, items: Sequence[str]) -> tuple[Category, ...]:
        """Return the categories with these ids or names, in order; NotFoundError for an unknown one."""
        return tuple(_find(self.catalog.categories, item, "category") for item in items)


_Entry = TypeVar("_Entry", Purpose, Category)


def _find(entries: tuple[_Entry, ...], text: str, what: str) -> _Entry:
    wanted = text.strip()
    for entry in entries:
        if (wanted.isdigit() and entry.id == int(wanted)) or entry.name.lower() == wanted.lower():
            return entry
    known = ", ".join(f"{e.id} {e.name}" for e in entries) or "none"
    raise NotFoundError(f"no {what} {text!r} in the catalog; its {what.replace('y', 'ie')}s: {known}")


def read_directory(ledger: Ledger) -> Directory:
    """Return the members and the catalog as of the latest block."""
    block, block_time, _ = ledger.latest_block()
    catalog = Catalog(tuple(ledger.categories()), tuple(ledger.purposes()), block, block_time)
    return Directory(tuple(ledger.members()), catalog)


def legal_text_hash(text: bytes) -> bytes:
    """Return the keccak256 a mandate cites its legal text by."""
    return bytes(keccak(text))


def mandate_refusal(
    directory: Directory, institution: Member, purpose: Purpose, categories: Sequence[Category], valid_until: int
) -> str | None:
    """Return why the Consortium would refuse to grant this mandate now (with the rule), or None.

    In the contract's order: the institution an ACTIVE REQUESTER, 1 to 32 categories, an end in the
    future and not past the purpose's sunset, every category allowing the purpose.
    """
    who = f"{institution.name or institution.address}"
    if institution.status is not MemberStatus.ACTIVE:
        return f"{who} is {institution.status.name.lower()}, not an active member (ConsortiumMemberNotActive)"
    if Role.REQUESTER not in institution.roles:
        return f"{who} is no requester (roles {institution.roles.label()}): a mandate needs one (ConsortiumMissingRole)"
    if not 1 <= len(categories) <= MAX_MANDATE_CATEGORIES:
        return f"a mandate covers 1 to {MAX_MANDATE_CATEGORIES} categories, not {len(categories)} " \
               "(LegalBasesInvalidMandate)"
    if valid_until <= directory.now:
        return f"it would end at {iso(valid_until)}, not after the chain's time {iso(directory.now)} " \
               "(LegalBasesInvalidMandate: ends in the past)"
    if purpose.sunset and valid_until > purpose.sunset:
        return f"it would end at {iso(valid_until)}, after purpose {purpose.id} ({purpose.name}) ends at " \
               f"{iso(purpose.sunset)} (LegalBasesInvalidMandate: ends after the purpose's sunset)"
    for category in categories:
        if purpose.id not in category.allowed_purposes:
            return f"category {category.id} ({category.name}) may not be used for purpose {purpose.id} " \
                   f"({purpose.name}) (LegalBasesInvalidMandate: a category does not allow the purpose)"
    return None


def check_mandate(
    directory: Directory, institution: Member, purpose: Purpose, categories: Sequence[Category], valid_until: int
) -> None:
    """Return if the Consortium would grant this mandate now; PayloadValidationError saying why not."""
    problem = mandate_refusal(directory, institution, purpose, categories, valid_until)
    if problem is not None:
        raise PayloadValidationError(f"the mandate would be refused: {problem}")


def mandate_state(mandate: Mandate, purpose: Purpose | None, now: float) -> str:
    """Return "revoked", "expired", "purpose ended" or "in force" for `mandate` at `now` (the chain's rules)."""
    if mandate.revoked:
        return REVOKED
    if now > mandate.valid_until:
        return EXPIRED
    if purpose is not None and purpose.sunset and now >= purpose.sunset:
        return PURPOSE_ENDED
    return IN_FORCE
