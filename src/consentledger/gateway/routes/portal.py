"""The data subject's portal over HTTP: the page, its assets, and the cookie API it calls (`/portal/api/...`).

Sign-in is a wallet signature over a single-use challenge; the session is an HttpOnly, SameSite=Strict
cookie on `/portal`. Every POST but challenge and session needs the header `X-CL-Portal: 1`, which a
cross-site form cannot send (no CORS is served), so a page elsewhere cannot act with the cookie.
The API serves only the page, so it is left out of the OpenAPI document (a cookie API, not a signed one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from consentledger.consent import Consent
from consentledger.errors import AuthenticationError, AuthorizationError, NotFoundError
from consentledger.gateway.auth import gateway_of
from consentledger.gateway.flows.portal import actions
from consentledger.gateway.flows.portal.bodies import (
    ChallengeIn,
    DenyIn,
    ErasureIn,
    GrantIn,
    NarrowingIn,
    RevocationIn,
    SessionIn,
)
from consentledger.gateway.flows.portal.overview import overview as build_overview
from consentledger.gateway.flows.portal.sign_in import challenge as new_challenge
from consentledger.gateway.flows.portal.sign_in import delegation_of, open_session, sessions_of
from consentledger.gateway.runtime import Gateway
from consentledger.store.portal_sessions import PortalSession

router = APIRouter(include_in_schema=False)
GatewayDep = Annotated[Gateway, Depends(gateway_of)]

COOKIE = "cl_portal_session"
CSRF_HEADER = "X-CL-Portal"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSETS = {"portal.js": "text/javascript; charset=utf-8", "portal.css": "text/css; charset=utf-8"}
GatewayOrg = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$", description="the org holding the request")]
RequestId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{32}$")]


def _asset(name: str) -> bytes:
    return resources.files("consentledger.portal").joinpath("static", name).read_bytes()


def portal_session(request: Request, token: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> PortalSession:
    """Dependency: the signed-in subject's live session; 401 without one."""
    if token is None:
        raise AuthenticationError("not signed in to the portal: sign in with your wallet")
    return sessions_of(gateway_of(request)).lookup(token)


def portal_post(request: Request) -> None:
    """Dependency: the request carries `X-CL-Portal: 1` (the page sends it, a cross-site form cannot); else 403."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise AuthorizationError(f"a portal action needs the header {CSRF_HEADER}: 1 (sent by the portal page)")


Session = Annotated[PortalSession, Depends(portal_session)]
Guarded = [Depends(portal_post)]


@router.get("/portal")
def page() -> Response:
    """Return the portal page."""
    return Response(_asset("portal.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/portal/static/{name}")
def asset(name: str) -> Response:
    """Return the page's script or style sheet (only those); 404 for any other name."""
    if name not in ASSETS:
        raise NotFoundError(f"no portal asset {name!r}")
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.post("/portal/api/challenge", status_code=201)
def challenge(gw: GatewayDep, body: ChallengeIn) -> JSONResponse:
    """Return `{challenge, typed_data}`: the `PortalSignIn` the subject's wallet signs (answer within 5 minutes)."""
    return JSONResponse(new_challenge(gw, body.subject), status_code=201, headers={"Cache-Control": "no-store"})


@router.post("/portal/api/session")
def session(request: Request, gw: GatewayDep, body: SessionIn) -> JSONResponse:
    """Open a session for the challenge's subject if the signature is theirs; set the cookie. 401 otherwise."""
    token, opened = open_session(gw, body.challenge, bytes.fromhex(body.signature[2:]))
    answer = JSONResponse({"subject": opened.subject, "expires_at": _iso(opened.expires_at)},
                          headers={"Cache-Control": "no-store"})
    answer.set_cookie(COOKIE, token, max_age=_seconds_left(opened.expires_at), path="/portal", httponly=True,
                      samesite="strict", secure=request.url.scheme == "https")
    return answer


@router.post("/portal/api/logout", status_code=204, dependencies=Guarded)
def logout(request: Request, gw: GatewayDep, token: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
    """End the session (if any) and clear the cookie."""
    if token is not None:
        sessions_of(gw).end(token)
    answer = Response(status_code=204)
    answer.delete_cookie(COOKIE, path="/portal", httponly=True, samesite="strict",
                         secure=request.url.scheme == "https")
    return answer


@router.get("/portal/api/overview")
def overview(gw: GatewayDep, signed_in: Session) -> JSONResponse:
    """Return the subject's overview: requests (here and at the peers), consents, records and their accesses."""
    shown = build_overview(gw, signed_in.subject, delegation_of(signed_in))
    return JSONResponse(shown, headers={"Cache-Control": "no-store"})


@router.post("/portal/api/requests/{gateway}/{request_id}/consent", dependencies=Guarded)
def consent_typed_data(gw: GatewayDep, signed_in: Session, gateway: GatewayOrg, request_id: RequestId,
                       body: NarrowingIn) -> dict[str, Any]:
    """Return `{typed_data, nonce}`: the Consent to sign for the request narrowed so; 422 wider than asked."""
    return actions.consent_for(gw, signed_in.subject, gateway, request_id, body.narrowing(), delegation_of(signed_in))


@router.post("/portal/api/requests/{gateway}/{request_id}/grant", dependencies=Guarded)
def grant(gw: GatewayDep, signed_in: Session, gateway: GatewayOrg, request_id: RequestId,
          body: GrantIn) -> dict[str, Any]:
    """Grant the request at the gateway holding it (signed Consent); return the request, granted."""
    return actions.grant(gw, signed_in.subject, gateway, request_id, body.narrowing(), int(body.nonce),
                         body.signature, delegation_of(signed_in))


@router.post("/portal/api/requests/{gateway}/{request_id}/deny", dependencies=Guarded)
def deny(gw: GatewayDep, signed_in: Session, gateway: GatewayOrg, request_id: RequestId,
         body: DenyIn | None = None) -> dict[str, Any]:
    """Deny the request at the gateway holding it; return the request, denied."""
    return actions.deny(gw, signed_in.subject, gateway, request_id, delegation_of(signed_in))


@router.post("/portal/api/consents/revoke", dependencies=Guarded)
def revoke(gw: GatewayDep, signed_in: Session, body: RevocationIn) -> dict[str, Any]:
    """Relay the subject's signed revocation; return `{consent, revocation: {status, tx_hash?}}`."""
    consent = Consent.from_json(body.consent.model_dump())
    return actions.revoke(gw, signed_in.subject, consent, bytes.fromhex(body.signature[2:]))


@router.post("/portal/api/erasure", dependencies=Guarded)
async def erasure(gw: GatewayDep, signed_in: Session, body: ErasureIn) -> JSONResponse:
    """Erase the subject's records at every custodian holding one: 200 all settled, 202 some writes still on their
    way; a refusal by all alike with its status (422 a live consent not revoked); 502 erased only at some."""
    signed = [(Consent.from_json(r.consent.model_dump()), bytes.fromhex(r.signature[2:])) for r in body.revocations]
    status, answer = await run_in_threadpool(actions.erase, gw, signed_in.subject, signed, delegation_of(signed_in))
    return JSONResponse(answer, status_code=status)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_left(expires: datetime) -> int:
    return max(1, int((expires - datetime.now(UTC)).total_seconds()))
