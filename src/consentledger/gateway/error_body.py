"""The JSON a gateway answers for one of our errors: `{"error", "detail", ...}`, for a whole call or one batch item."""

from __future__ import annotations

from typing import Any

from consentledger.errors import ConsentLedgerError, ContractRevertError


def error_body(exc: ConsentLedgerError) -> dict[str, Any]:
    """Return the refusal's JSON body: its code, its detail, the rule that fired (if one did) and its own fields."""
    body: dict[str, Any] = {"error": exc.code, "detail": str(exc), **exc.fields()}
    if isinstance(exc, ContractRevertError):
        body["rule"] = exc.rule
    return body
