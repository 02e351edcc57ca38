"""The JSON body of a refusal: what the gateway answers for an error, alone or as one item of a batch."""

from __future__ import annotations

from typing import Any

from consentledger.errors import ConsentLedgerError, ContractRevertError


def error_body(exc: ConsentLedgerError) -> dict[str, Any]:
    """Return `{"error": code, "detail": text, ...its fields}`, with the contract rule of a revert."""
    body = {"error": exc.code, "detail": str(exc), **exc.fields()}
    if isinstance(exc, ContractRevertError):
        body["rule"] = exc.rule
    return body


def item_refusal(exc: ConsentLedgerError) -> dict[str, Any]:
    """Return a batch item's refusal: the error body its single request would answer, with that HTTP status."""
    return {**error_body(exc), "status": exc.http_status}
