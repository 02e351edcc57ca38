"""The FastAPI application: routes, one JSON error shape, and the gateway's lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from consentledger.errors import ConsentLedgerError
from consentledger.gateway.body_limit import BodyLimit
from consentledger.gateway.docs import install as install_docs
from consentledger.gateway.openapi import install as install_openapi
from consentledger.gateway.refusals import error_body
from consentledger.gateway.routes import (
    access,
    attestations,
    audit,
    audit_page,
    clients,
    consent_requests,
    consents,
    health,
    lifecycle,
    portal,
    receipts,
    records,
)
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.upkeep import start_upkeep
from consentledger.signing import SIGNED_HEADERS

log = logging.getLogger(__name__)

DESCRIPTION = (
    "An agency's gateway to the consentledger. Every endpoint except `/v1/health`, `/v1/ready`, "
    "`/v1/chain/domain` and `/v1/catalog` needs an EIP-712 `GatewayRequest` signature over (audience, method, "
    "path with query, SHA-256 of the body, timestamp, nonce) carried in the headers "
    + ", ".join(f"`{h}`" for h in SIGNED_HEADERS)
    + ". Refusals are JSON `{\"error\": code, \"detail\": text}`: 401 unsigned or bad signature, "
    "403 wrong role / suspended / a contract rule (named), 409 replayed nonce, 410 record destroyed "
    "(crypto-shredded or tombstoned), 413 too large, "
    "422 malformed or off the positive list, 502 integrity or custodian failure, 503 chain unreachable "
    "or a signer that cannot pay for a chain write (`insufficient_funds`, naming the command that funds it)."
)


def create_app(gateway: Gateway, *, upkeep: bool = True) -> FastAPI:
    """Return the app serving `gateway`; with `upkeep` the relay, membership watcher and indexer run alongside."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if upkeep:
            start_upkeep(gateway)
        try:
            yield
        finally:
            gateway.close()

    app = FastAPI(title=f"consentledger gateway — {gateway.settings.name}", description=DESCRIPTION,
                  version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gateway
    app.add_middleware(BodyLimit, max_bytes=gateway.settings.max_body_bytes)  # counts bytes before any route runs
    for routes in (health, records, attestations, consents, consent_requests, access, lifecycle, clients, audit,
                   audit_page, receipts):
        app.include_router(routes.router)
    app.include_router(portal.router)
    install_openapi(app)
    install_docs(app)

    @app.exception_handler(ConsentLedgerError)
    async def our_error(request: Request, exc: ConsentLedgerError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # No such path or method: the same JSON shape as every other refusal.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal_error", "detail": type(exc).__name__}, status_code=500)

    return app
