"""The positive list as one value, as of a block, and the one check of the category and purpose a consent names.

The gateway (before it relays a consent or files a consent request) and the client (before the
subject signs a consent) judge terms with the same `Catalog.refusal`. Its clock is the chain's: the
timestamp of the block the catalog was read at, the clock the contracts judge a sunset by. Every
access checks the catalog again at its own, later, block, so a purpose past its sunset at the
latest block can never be used again, and refusing by that time refuses only what is certain to be
useless (a wall clock ahead of the chain would refuse consents the contracts still honour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consentledger.errors import PayloadValidationError
from consentledger.types import Category, Purpose, Sensitivity

SENSITIVITY_NAMES = {Sensitivity.OPEN: "open", Sensitivity.ONE_TIME: "one-time", Sensitivity.PROTECTED: "protected"}
"""A category's sensitivity as the API and the CLI spell it."""


@dataclass(frozen=True)
class Catalog:
    """Every category and purpose of the positive list as read at block `block` (timestamp `block_time`)."""

    categories: tuple[Category, ...]
    purposes: tuple[Purpose, ...]
    block: int
    block_time: int

    def category(self, category_id: int) -> Category | None:
        """Return category `category_id`, or None if the catalog has none."""
        return next((c for c in self.categories if c.id == category_id), None)

    def purpose(self, purpose_id: int) -> Purpose | None:
        """Return purpose `purpose_id`, or None if the catalog has none."""
        return next((p for p in self.purposes if p.id == purpose_id), None)

    def active(self, purpose: Purpose) -> bool:
        """Return whether `purpose` is not past its sunset at this catalog's block time (the contracts' rule)."""
        return not purpose.sunset or self.block_time < purpose.sunset

    def usable_purposes(self, category: Category) -> tuple[Purpose, ...]:
        """Return the purposes `category` allows that are not past their sunset."""
        return tuple(p for p in self.purposes if p.id in category.allowed_purposes and self.active(p))

    def refusal(self, category_id: int, purpose_id: int) -> str | None:
        """Return why no access could use a consent for (`category_id`, `purpose_id`), naming what is allowed; or None.

        In the contracts' order: an unknown category, an unknown purpose, a purpose the category does
        not allow, a purpose past its sunset.
        """
        category = self.category(category_id)
        if category is None:
            return (f"category {category_id} is not in the catalog: no consent can be given for it; "
                    f"the catalog's categories: {_named(self.categories)}")
        allowed = f"purposes category {category.id} ({category.name}) allows now: " \
                  f"{_named(self.usable_purposes(category))}"
        purpose = self.purpose(purpose_id)
        if purpose is None:
            return f"purpose {purpose_id} is not in the catalog: no consent can be given for it; {allowed}"
        if purpose.id not in category.allowed_purposes:
            return (f"category {category.id} ({category.name}) may not be used for purpose {purpose.id} "
                    f"({purpose.name}); {allowed}")
        if not self.active(purpose):
            return f"purpose {purpose.id} ({purpose.name}) ended at {iso(purpose.sunset)}: no consent for it; {allowed}"
        return None

    def check_use(self, category_id: int, purpose_id: int) -> None:
        """Return if a consent for (`category_id`, `purpose_id`) could be used; PayloadValidationError if not."""
        problem = self.refusal(category_id, purpose_id)
        if problem is not None:
            raise PayloadValidationError(problem)

    def to_json(self) -> dict[str, Any]:
        """Return the catalog as `GET /v1/catalog` answers it (sensitivities by name, sunsets unix and ISO)."""
        return {
            "block": self.block,
            "block_time": self.block_time,
            "categories": [{
                "id": c.id, "name": c.name, "sensitivity": SENSITIVITY_NAMES[c.sensitivity], "retention": c.retention,
                "min_aggregate_subjects": c.min_aggregate_subjects, "fields": list(c.fields),
                "identifying_fields": list(c.identifying_fields), "allowed_purposes": list(c.allowed_purposes),
            } for c in self.categories],
            "purposes": [{
                "id": p.id, "name": p.name, "sunset": p.sunset or None,
                "sunset_at": iso(p.sunset) if p.sunset else None, "active": self.active(p),
            } for p in self.purposes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Catalog:
        """Return the catalog `to_json` wrote; KeyError, TypeError or ValueError for anything else."""
        by_name = {name: level for level, name in SENSITIVITY_NAMES.items()}
        categories = tuple(
            Category(int(c["id"]), str(c["name"]), by_name[c["sensitivity"]], int(c["retention"]),
                     int(c["min_aggregate_subjects"]), tuple(int(p) for p in c["allowed_purposes"]),
                     tuple(map(str, c["fields"])), tuple(map(str, c["identifying_fields"])))
            for c in data["categories"]
        )
        purposes = tuple(Purpose(int(p["id"]), str(p["name"]), int(p["sunset"] or 0)) for p in data["purposes"])
        return cls(categories, purposes, int(data["block"]), int(data["block_time"]))


def iso(unix: int) -> str:
    """Return a unix time as ISO-8601 UTC to the second."""
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _named(entries: tuple[Category, ...] | tuple[Purpose, ...]) -> str:
    return ", ".join(f"{e.id} {e.name}" for e in entries) or "none"
