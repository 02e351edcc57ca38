"""The gateway's OpenAPI document as served: request bodies, refusals in their one JSON shape, the signature scheme.

The routes read their bodies raw (the signature covers the exact bytes), so FastAPI cannot see them:
each POST names its pydantic model with `signed_body(Model)` and this module adds the models, the
`Error` schema, the `X-CL-*` headers as one security requirement and each operation's refusals.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from consentledger.signing import SIGNED_HEADERS

REF = "#/components/schemas/{model}"
UNSIGNED = frozenset({"/v1/health", "/v1/ready", "/v1/chain/domain", "/audit", "/v1/catalog"})
"""Operations that take no `X-CL-*` signature (the audit page uses its session cookie)."""

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every refusal: a stable code and a readable sentence, plus fields some refusals add "
                   "(`rule` of a contract rule, `record`/`reason`/`tombstone` of a destroyed record, `missing`, "
                   "`on_chain`/`record`/`seq`/`block`/`tx` of an access whose custodian did not answer).",
    "properties": {
        "error": {"type": "string", "description": "A stable code, e.g. `unauthenticated`, `invalid_request`"},
        "detail": {"type": "string", "description": "What went wrong, in words"},
        "rule": {"type": "string", "description": "The contract rule a 403 `rule_violated` names"},
    },
    "required": ["error", "detail"],
    "additionalProperties": True,
}

STATUS_TEXT = {
    401: "Unsigned, or a bad signature, audience or clock (`unauthenticated`)",
    403: "Wrong role, suspended, not this agency's client, or a contract rule (`forbidden`, `rule_violated`)",
    404: "No such record, access or actor here (`not_found`)",
    409: "A replayed nonce or a conflicting Idempotency-Key (`replayed_request`, `idempotency_conflict`)",
    410: "The record was destroyed: crypto-shredded or tombstoned (`record_destroyed`)",
    413: "The body (or a batch) is too large (`payload_too_large`)",
    422: "A malformed request or body, or a value off the positive list (`invalid_request`, `invalid_payload`)",
    425: "The access is not yet `release_confirmations` blocks deep; ask again later (`not_confirmed`, with "
         "`depth` and `needed`)",
    502: "An integrity, transaction or custodian failure (`integrity_error`, `custodian_unavailable`: an access "
         "on chain names its `record` and `seq`, to retry with the same Idempotency-Key or resume)",
    503: "The chain is unreachable or the signer cannot pay for a write (`chain_unavailable`, "
         "`insufficient_funds`)",
    504: "A chain write was sent but not mined in time (`transaction_not_mined`)",
}

SIGNED_REFUSALS = (401, 403, 409, 413, 422)
EXTRA_REFUSALS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/v1/records"): (409, 502, 503, 504),
    ("get", "/v1/records/{record_id}"): (404, 410),
    ("get", "/v1/records/{record_id}/attestation"): (404, 410, 503),
    ("post", "/v1/records/{record_id}/attestation"): (404, 410, 502, 503, 504),
    ("post", "/v1/access"): (404, 410, 425, 502, 503, 504),
    ("post", "/v1/access/batch"): (502, 503, 504),
    ("post", "/v1/access/resume"): (404, 410, 425, 502, 503),
    ("post", "/v1/keys/batch"): (502, 503),
    ("post", "/v1/keys/{record_id}/{seq}"): (404, 410, 425, 502, 503),
    ("post", "/v1/consents"): (502, 503, 504),
    ("post", "/v1/consents/revoke"): (404, 502, 503, 504),
    ("post", "/v1/subjects/me/erasure"): (502, 503, 504),
    ("post", "/v1/sweep"): (502, 503),
    ("get", "/v1/actors/{actor}"): (404,),
    ("get", "/v1/receipts/{record_id}/{seq}"): (404,),
    ("get", "/v1/audit/overrides/{record}/{seq}"): (404,),
    ("get", "/v1/consent-requests/{request_id}"): (404,),
    ("post", "/v1/subjects/me/consent-requests/{request_id}/grant"): (404, 410, 502, 503, 504),
    ("post", "/v1/subjects/me/consent-requests/{request_id}/deny"): (404, 410),
    ("get", "/audit"): (401, 403, 422),
}
"""Refusals beyond the signed ones and the 503 of a chain that is down."""

HTML_REFUSALS: dict[tuple[str, str], tuple[int, ...]] = {("get", "/audit"): (422,)}
"""Refusals a page answers as HTML instead of the JSON error shape."""

_BODIES: dict[str, type[BaseModel]] = {}


def signed_body(model: type[BaseModel]) -> dict[str, Any]:
    """Return the `openapi_extra` declaring `model` as the operation's JSON body (read raw, as signed)."""
    _BODIES[model.__name__] = model
    required = any(field.is_required() for field in model.model_fields.values())
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}}


def response_schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    """Return a `responses` entry naming `model` for a route that answers a JSONResponse itself."""
    return {"model": model, "description": description}


def install(app: FastAPI) -> None:
    """Make `app` serve the completed document at /openapi.json (built once, on first request)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    """Return `spec` with the body models, the Error schema, the signature scheme and each operation's refusals."""
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, never what is answered
        schemas.pop(name, None)
    for name, model in sorted(_BODIES.items()):
        body = model.model_json_schema(ref_template=REF)
        schemas.update(body.pop("$defs", {}))
        schemas[name] = body
    schemas["Error"] = ERROR_SCHEMA
    spec["components"]["securitySchemes"] = {
        header: {"type": "apiKey", "in": "header", "name": header,
                 "description": "Part of the EIP-712 GatewayRequest signature: see the API's description"}
        for header in SIGNED_HEADERS
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            signed = path not in UNSIGNED
            if signed:
                operation["security"] = [{header: [] for header in SIGNED_HEADERS}]
            _declare_responses(operation, method, path, signed)
    return spec


def _declare_responses(operation: dict[str, Any], method: str, path: str, signed: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for answer in responses.values():
        for media in answer.get("content", {}).values():
            if media.get("schema") == {}:  # a route answering a JSONResponse itself: at least an object
                media["schema"] = {"type": "object"}
    statuses = {503, *EXTRA_REFUSALS.get((method, path), ())}  # every operation reads the chain or its index
    if signed:
        statuses |= set(SIGNED_REFUSALS)
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": STATUS_TEXT[status],
            "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
        }
    if (method, path) in HTML_REFUSALS:  # a page answers a person: its bad filters get a readable page
        for status in HTML_REFUSALS[(method, path)]:
            responses[str(status)] = {"description": STATUS_TEXT[status] + "; a readable HTML page",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}
    operation["responses"] = dict(sorted(responses.items()))
