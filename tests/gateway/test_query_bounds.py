"""Every query and path parameter is bounded: any value gets an answer or a 422 JSON error, never a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentledger.gateway.routes.audit import MAX_OFFSET
from consentledger.gateway.routes.audit_page import COOKIE

from .conftest import Audited
from .world import Consortium, expect, signed

pytestmark = pytest.mark.process

EXTREME_INTS = [2**63, 2**63 - 1, 2**64, -(2**63) - 1, 10**30, -1, 0, 2**40, 2**31]


def _query(params: dict[str, Any]) -> str:
    return urlencode(params, quote_via=quote, safe="") if params else ""


@pytest.mark.parametrize("params", [
    {"offset": 2**63}, {"offset": 2**64}, {"offset": -1}, {"offset": MAX_OFFSET + 1}, {"limit": 10**20},
    {"limit": -5}, {"limit": 0}, {"since": -1}, {"until": 2**70}, {"since": "yesterday"},
    {"purpose": "p" * 5000}, {"subject": "0x" + "g" * 40}, {"record": "0x" + "0" * 63 + "\0"},
    {"org": "0x" + "1" * 4000},
])
def test_an_out_of_range_audit_listing_parameter_is_a_422(
    consortium: Consortium, audited: Audited, params: dict[str, Any]
) -> None:
    """offset=2**63 (an OverflowError once), huge or negative ints, overlong or malformed strings: 422 naming it."""
    response = signed(consortium.health, audited.auditor.key, "GET", f"/v1/audit/accesses?{_query(params)}")

    answer = expect(response, 422, "invalid_request")
    assert next(iter(params)) in answer["detail"]


def test_the_deepest_offset_allowed_answers_an_empty_page(consortium: Consortium, audited: Audited) -> None:
    """offset at its bound is a valid, empty page."""
    response = signed(consortium.health, audited.auditor.key, "GET", f"/v1/audit/accesses?offset={MAX_OFFSET}")

    answer = expect(response, 200)
    assert (answer["items"], answer["offset"], answer["next_offset"]) == ([], MAX_OFFSET, None)


@pytest.mark.parametrize("record", ["0x" + "a" * 67, "x" * 3000])
def test_an_overlong_record_id_in_a_path_is_a_422(consortium: Consortium, record: str) -> None:
    """A record id longer than 66 characters in a path is refused before any lookup."""
    health = consortium.health
    response = signed(health, consortium.key(health), "GET", f"/v1/records/{record}")

    assert "record_id" in expect(response, 422, "invalid_request")["detail"]


@pytest.fixture(scope="module")
def openapi(consortium: Consortium) -> dict[str, Any]:
    """The gateway's own OpenAPI document, as it serves it."""
    return dict(httpx.get(consortium.health.url + "/openapi.json", trust_env=False).json())


@pytest.fixture(scope="module")
def page_cookie(consortium: Consortium, audited: Audited) -> Iterator[str]:
    """An auditor's audit-page session cookie at health's gateway."""
    link = expect(signed(consortium.health, audited.auditor.key, "POST", "/v1/audit/session", {}), 201)
    with httpx.Client(trust_env=False, timeout=60, follow_redirects=True) as browser:
        expect_ok = browser.get(link["url"])
        assert expect_ok.status_code == 200, expect_ok.text[:300]
        yield str(browser.cookies[COOKIE])


def _value(schema: dict[str, Any], where: str) -> st.SearchStrategy[Any]:
    # A path is signed as sent but checked decoded, so path values stay URL-safe to reach the route.
    text = st.from_regex(r"\A[A-Za-z0-9._~-]{0,400}\Z") if where == "path" else st.text(max_size=400)
    ints = st.one_of(st.sampled_from(EXTREME_INTS), st.integers(min_value=-(2**70), max_value=2**70))
    kinds = {s.get("type") for s in schema.get("anyOf", [schema])}
    return st.one_of(ints, text) if "integer" in kinds else st.one_of(text, ints)


def _operations(openapi: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Return each GET path with its query and path parameters."""
    found = []
    for path, methods in openapi["paths"].items():
        params = [p for p in methods.get("get", {}).get("parameters", []) if p["in"] in ("query", "path")]
        if params:
            found.append((path, params))
    return found


def test_the_openapi_document_lists_the_parameterised_routes(openapi: dict[str, Any]) -> None:
    """The fuzzing below covers the audit listings (accesses, refusals), the audit page, the record lookup, a
    record's attestation terms, the actor disclosure, the consent requests, an access's receipt and an override's
    justification (no route forgotten)."""
    assert {path for path, _ in _operations(openapi)} == {
        "/v1/audit/accesses", "/v1/audit/refusals", "/audit", "/v1/records/{record_id}",
        "/v1/records/{record_id}/attestation", "/v1/actors/{actor}", "/v1/consent-requests",
        "/v1/consent-requests/{request_id}", "/v1/subjects/me/consent-requests", "/v1/receipts/{record_id}/{seq}",
        "/v1/audit/overrides/{record}/{seq}",
    }


def test_no_parameter_value_makes_a_gateway_fail(
    consortium: Consortium, audited: Audited, openapi: dict[str, Any], page_cookie: str
) -> None:
    """Random values (huge and negative ints, any text, NULs, overlong) for every GET parameter the OpenAPI
    document lists: each answer is 200 or a 4xx with the JSON error shape (the audit page: an HTML page of
    sentences for a 422), never a 5xx."""
    health = consortium.health
    keys = {"/v1/audit/accesses": audited.auditor.key, "/v1/audit/refusals": audited.auditor.key,
            "/v1/records/{record_id}": consortium.key(health),
            "/v1/records/{record_id}/attestation": audited.alice.key, "/v1/actors/{actor}": audited.auditor.key,
            "/v1/consent-requests": consortium.key(health), "/v1/consent-requests/{request_id}": audited.alice.key,
            "/v1/subjects/me/consent-requests": audited.alice.key, "/v1/receipts/{record_id}/{seq}": audited.alice.key,
            "/v1/audit/overrides/{record}/{seq}": audited.auditor.key}

    def ask(path: str, params: list[dict[str, Any]], values: dict[str, Any]) -> None:
        target, query = path, {}
        for p in params:
            if p["in"] == "path":
                target = target.replace("{" + p["name"] + "}", str(values.get(p["name"], "x")))
            elif p["name"] in values and p["name"] != "token":  # a token would claim, not render, the page
                query[p["name"]] = values[p["name"]]
        full = target + (f"?{_query(query)}" if query else "")
        if path == "/audit":
            response = httpx.get(health.url + full, cookies={COOKIE: page_cookie}, trust_env=False, timeout=60)
        else:
            response = signed(health, keys[path], "GET", full)
        assert response.status_code < 500, f"{full}: {response.status_code} {response.text[:300]}"
        if path == "/audit" and response.status_code == 422:  # the page answers a person: sentences, not JSON
            assert response.headers["content-type"].startswith("text/html") and "<li>The " in response.text
        elif response.status_code >= 400:
            assert set(response.json()) >= {"error", "detail"}, response.text[:300]

    def fuzz(path: str, params: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
        def run(values: dict[str, Any]) -> None:
            ask(path, params, values)
        return run

    for path, params in _operations(openapi):
        drawn = st.fixed_dictionaries({}, optional={p["name"]: _value(p.get("schema", {}), p["in"]) for p in params})
        settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))(
            given(drawn)(fuzz(path, params)))()
