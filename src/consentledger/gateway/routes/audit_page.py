"""The audit web page at `/audit`: opened by a short-lived session that a signed request asked for.

`POST /v1/audit/session` (signed) returns a one-time link `/audit?token=…`. Opening it claims the
token, sets an HttpOnly cookie and redirects to `/audit`, which then renders, on the server, the
data-flow graph, the access timeline and the refused attempts (`consentledger.audit.render`): every
access for an auditor, or the signer's own records for a data subject. The page loads nothing from elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from consentledger.audit import TraceLine, VerifyReport, refusals, trace, verify
from consentledger.audit.bases import mandate_lines, override_lines
from consentledger.audit.checks import Discrepancy, DiscrepancyKind
from consentledger.audit.filter_errors import filter_problems, render_filter_error_page
from consentledger.audit.lifecycle import consent_standings, tombstones
from consentledger.audit.render import content_security_policy, render_audit_page
from consentledger.chain.history import fold
from consentledger.errors import AuthenticationError, AuthorizationError
from consentledger.gateway.auth import Caller, active_member, authenticate, gateway_of
from consentledger.gateway.flows.auditing import release_rules
from consentledger.gateway.openapi import signed_body
from consentledger.gateway.routes.audit import ADDRESS_PATTERN, PURPOSE_PATTERN, RECORD_PATTERN, UNIX_QUERY
from consentledger.gateway.runtime import Gateway
from consentledger.gateway.schemas import PageSessionIn, parse
from consentledger.store.sessions import PageSession, PageSessions, PageView
from consentledger.types import MemberStatus, Role

router = APIRouter()
GatewayDep = Annotated[Gateway, Depends(gateway_of)]

COOKIE = "cl_audit_session"
PAGE_LIMIT = 5000
"""The most accesses (and, apart, refused attempts) one page shows, oldest first; narrow the period or filters
for more."""
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.post("/v1/audit/session", status_code=201, summary="Ask for a short-lived link to the audit page (signed)",
             openapi_extra=signed_body(PageSessionIn))
async def open_session(
    request: Request, gw: GatewayDep, caller: Annotated[Caller, Depends(authenticate)]
) -> dict[str, Any]:
    """Return `{url, view, viewer, expires_at}`: a one-time link to the auditor's or the signer's own view.

    Body `{"view": "audit" | "subject"}`; without a view an active AUDITOR gets the auditor's view
    and anyone else (a data subject) their own. The audit view needs an ACTIVE member with AUDITOR.
    """
    asked = parse(PageSessionIn, caller.body).view
    view = await run_in_threadpool(_choose_view, gw, caller, asked)
    link = await run_in_threadpool(PageSessions(gw.store.engine).issue, caller.address, view,
                                   gw.settings.page_session_ttl)
    page = request.url_for("audit_page").include_query_params(token=link.token)
    return {"url": str(page), "view": view.value, "viewer": caller.address,
            "expires_at": link.session.expires_at.isoformat(timespec="seconds")}


class _ReadableFilterErrors(APIRoute):
    """A route that answers bad query parameters with an HTML page of plain sentences (422), not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def readable(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                page = render_filter_error_page(filter_problems(exc.errors()), back_href=request.url.path)
                csp = content_security_policy(served=True) + "; frame-ancestors 'none'"
                return HTMLResponse(page, status_code=422,
                                    headers={**_SECURITY_HEADERS, "Content-Security-Policy": csp})

        return readable


def audit_page(
    request: Request,
    gw: GatewayDep,
    token: Annotated[str | None, Query(max_length=200, description="One-time link token")] = None,
    session_cookie: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    subject: Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="Auditors: one data subject")] = None,
    record: Annotated[str | None, Query(pattern=RECORD_PATTERN)] = None,
    org: Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="Requester or custodian")] = None,
    purpose: Annotated[str | None, Query(pattern=PURPOSE_PATTERN, description="Purpose id or name")] = None,
    since: Annotated[int | None, UNIX_QUERY] = None,
    until: Annotated[int | None, UNIX_QUERY] = None,
) -> HTMLResponse | RedirectResponse:
    """Claim a link token (then redirect to the bare page) or render the page for the cookie's session."""
    sessions = PageSessions(gw.store.engine)
    if token is not None:
        cookie, session = sessions.claim(token)
        redirect = RedirectResponse(request.url.path, status_code=303, headers=_SECURITY_HEADERS)
        redirect.set_cookie(
            COOKIE, cookie, max_age=_seconds_left(session), path=request.url.path, httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )
        return redirect
    if session_cookie is None:
        raise AuthenticationError("no audit page session: run `consentledger audit open` and open the link it prints")
    session = sessions.lookup(session_cookie)
    if session.view is PageView.AUDIT:
        active_member(gw, Caller(session.viewer, b""), Role.AUDITOR)  # suspended since? then nothing
    elif subject is not None and subject.lower() != session.viewer.lower():
        raise AuthorizationError("a data subject's page shows only their own records")
    shown_subject = subject if session.view is PageView.AUDIT else session.viewer
    with gw.index_held():
        block = gw.indexer.cursor().block
        lines = trace(gw.store.engine, subject=shown_subject, record=record, org=org, purpose=purpose,
                      since=since, until=until, limit=PAGE_LIMIT)
        refused = refusals(gw.store.engine, subject=shown_subject, record=record, org=org, purpose=purpose,
                           since=since, until=until, limit=PAGE_LIMIT)
        narrowed = any(f is not None for f in (record, org, purpose, since, until))
        shown = {line.record for line in lines} | ({"0x" + record.lower().removeprefix("0x")} if record else set())
        ended = tombstones(gw.store.engine, subject=shown_subject, records=shown if narrowed else None)
        consents = consent_standings(gw.store.engine, {line.consent for line in lines if line.consent},
                                     int(datetime.now(UTC).timestamp()))
        legal_bases = None
        if session.view is PageView.AUDIT:
            report = verify(gw.store.engine, gw.ledger, release_rules=release_rules(gw))
            legal_bases = (mandate_lines(gw.store.engine), override_lines(gw.store.engine))
        else:
            report = _own_records_checked(gw, session.viewer, block)
    page = render_audit_page(
        lines, report, title=_title(session, block), period=(_moment(since), _moment(until)),
        base_href=request.url.path, refusals=refused, consents=consents, tombstones=ended,
        filtered=narrowed or subject is not None, legal_bases=legal_bases,
    )
    # The header repeats the page's policy and adds what a <meta> policy cannot say: never inside a frame.
    csp = content_security_policy(served=True) + "; frame-ancestors 'none'"
    return HTMLResponse(page, headers={**_SECURITY_HEADERS, "Content-Security-Policy": csp})


# Added with its own route class: a person typing filters into the address bar reads sentences, not JSON.
router.add_api_route("/audit", audit_page, methods=["GET"], name="audit_page", response_class=HTMLResponse,
                     response_model=None, summary="The audit web page (session cookie)",
                     route_class_override=_ReadableFilterErrors)


def _choose_view(gw: Gateway, caller: Caller, asked: str | None) -> PageView:
    if asked == PageView.SUBJECT:
        return PageView.SUBJECT
    if asked == PageView.AUDIT:
        active_member(gw, caller, Role.AUDITOR)
        return PageView.AUDIT
    member = gw.members.get(caller.address)
    is_auditor = member.status is MemberStatus.ACTIVE and Role.AUDITOR in member.roles
    return PageView.AUDIT if is_auditor else PageView.SUBJECT


def _own_records_checked(gw: Gateway, subject: str, block: int | None) -> VerifyReport:
    """Check each of `subject`'s records: its accesses, chained, end at the head the chain holds at `block`."""
    lines = trace(gw.store.engine, subject=subject)
    by_record: dict[str, list[TraceLine]] = defaultdict(list)
    for line in lines:
        by_record[line.record].append(line)
    heads = gw.indexer.source.heads(list(by_record), block) if by_record and block is not None else {}
    found = tuple(
        Discrepancy(DiscrepancyKind.HEAD_MISMATCH, f"the listed accesses chain to {computed}, the chain holds "
                    f"{heads[record]}", record=record)
        for record, accesses in by_record.items()
        if (computed := "0x" + fold(line.entry() for line in accesses).hex()) != heads[record]
    )
    return VerifyReport(found, block, records=len(by_record), accesses=len(lines), consents=0, members=0,
                        heads_checked=len(heads))


def _title(session: PageSession, block: int | None) -> str:
    shown = f" (block {block})" if block is not None else ""
    if session.view is PageView.AUDIT:
        return f"Audit: who accessed what{shown}"
    return f"Your data ({session.viewer}): who accessed it, when and why{shown}"


def _seconds_left(session: PageSession) -> int:
    return max(1, int((session.expires_at - datetime.now(UTC)).total_seconds()))


def _moment(unix: int | None) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix is not None else None
