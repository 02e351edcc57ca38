"""Models of the gateway's JSON answers, so the served OpenAPI document describes each 200.

Each model matches its route's answer field for field (`extra="forbid"` in the schema, none left
out), so declaring it as the route's `response_model` never changes the bytes answered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogCategoryOut(_Answer):
    """A category of the positive list: what may be collected, how it is protected and kept, what it may serve."""

    id: int
    name: str
    sensitivity: Literal["open", "one-time", "protected"]
    retention: int = Field(description="Seconds a record of it is kept")
    min_aggregate_subjects: int = Field(description="K: distinct subjects an anonymous aggregate needs (0: none)")
    fields: list[str] = Field(description="Fields a record may hold")
    identifying_fields: list[str] = Field(description="Fields withheld unless a consent allows identification")
    allowed_purposes: list[int] = Field(description="Ids of the purposes it may be used for")


class CatalogPurposeOut(_Answer):
    """A purpose of use, its sunset and whether it is still in use at the catalog's block."""

    id: int
    name: str
    sunset: int | None = Field(description="When it ends (unix seconds); None: no sunset")
    sunset_at: str | None = Field(description="The sunset as ISO-8601 UTC; None: no sunset")
    active: bool = Field(description="Not past its sunset at `block_time`: consents for it can still be used")


class CatalogOut(_Answer):
    """GET /v1/catalog: the positive list as of a block, judged by that block's time (the contracts' clock)."""

    block: int
    block_time: int = Field(description="The block's timestamp (unix seconds)")
    categories: list[CatalogCategoryOut]
    purposes: list[CatalogPurposeOut]
