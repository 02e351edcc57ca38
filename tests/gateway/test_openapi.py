"""The OpenAPI document as the gateway serves it: bodies, answers and refusals a client generator can rely on."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from eth_account import Account
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from consentledger.gateway.schemas import RecordIn
from consentledger.signing import SIGNED_HEADERS

from .conftest import Audited
from .world import CONTACT_TRACE, DISTRICT_STATS, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

UNSIGNED = {"/v1/health", "/v1/ready", "/v1/chain/domain", "/audit", "/v1/catalog"}


@pytest.fixture(scope="module")
def spec(consortium: Consortium) -> dict[str, Any]:
    """The document health's gateway serves at /openapi.json."""
    response = httpx.get(consortium.health.url + "/openapi.json", trust_env=False, timeout=30)
    return dict(expect(response, 200))


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


def _problems(spec: dict[str, Any], value: Any, schema: dict[str, Any]) -> list[str]:
    """Return where `value` breaks `schema` (a `$ref` into the document's components), as OpenAPI 3.1 says."""
    validator = OAS31Validator({**schema, "components": spec["components"]})
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(value)]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def _declared(spec: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    answer = spec["paths"][path][method]["responses"][str(status)]
    return dict(answer["content"]["application/json"]["schema"])


def test_the_served_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    """openapi-spec-validator accepts the document as served (OpenAPI 3.1)."""
    validate(spec)

    assert spec["openapi"].startswith("3.1")


def test_every_reference_in_the_document_resolves(spec: dict[str, Any]) -> None:
    """A generator follows every `$ref`: each names a schema in components, and FastAPI's unused 422 shape is gone."""
    text = json.dumps(spec)
    refs = {part.split('"', 1)[0] for part in text.split('"$ref": "')[1:]}

    assert refs and all(ref.removeprefix("#/components/schemas/") in spec["components"]["schemas"] for ref in refs)
    assert "HTTPValidationError" not in text


def test_every_post_declares_its_json_body_from_its_model(spec: dict[str, Any]) -> None:
    """Each POST names its pydantic model as its body; POST /v1/records' schema is RecordIn's own."""
    posts = [(path, op) for method, path, op in _operations(spec) if method == "post"]

    assert len(posts) >= 10
    for path, op in posts:
        assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"], path
    body = _resolve(spec, spec["paths"]["/v1/records"]["post"]["requestBody"]["content"]["application/json"]["schema"])
    assert spec["paths"]["/v1/records"]["post"]["requestBody"]["required"] is True
    assert set(body["properties"]) == set(RecordIn.model_fields)
    assert body["additionalProperties"] is False
    assert spec["paths"]["/v1/sweep"]["post"]["requestBody"]["required"] is False  # an empty body is `{}`


def test_signed_operations_require_every_signature_header_together(spec: dict[str, Any]) -> None:
    """The X-CL-* headers are apiKey schemes, required as one; the unsigned endpoints require none."""
    schemes = spec["components"]["securitySchemes"]

    assert {name: (s["type"], s["in"], s["name"]) for name, s in schemes.items()} == {
        h: ("apiKey", "header", h) for h in SIGNED_HEADERS
    }
    for _, path, op in _operations(spec):
        if path in UNSIGNED:
            assert "security" not in op, path
        else:
            assert op["security"] == [{h: [] for h in SIGNED_HEADERS}], path


def test_each_operation_declares_its_refusals_in_the_error_shape(spec: dict[str, Any]) -> None:
    """Every 4xx/5xx declared refers to `Error` (the audit page's bad filters: a page); signed ones: 401…503."""
    for _, path, op in _operations(spec):
        statuses = {int(s) for s in op["responses"]}
        for status in statuses - set(range(200, 400)):
            if (path, status) == ("/audit", 422):
                assert set(op["responses"]["422"]["content"]) == {"text/html"}
                continue
            assert op["responses"][str(status)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}, (path, status)
        if path not in UNSIGNED:
            assert {401, 403, 409, 413, 422, 503} <= statuses, path
    post_record, get_record = spec["paths"]["/v1/records"]["post"], spec["paths"]["/v1/records/{record_id}"]["get"]
    assert {401, 403, 409, 413, 422, 502, 503, 504} <= {int(s) for s in post_record["responses"]}
    assert {404, 410} <= {int(s) for s in get_record["responses"]}
    assert _resolve(spec, {"$ref": "#/components/schemas/Error"})["required"] == ["error", "detail"]


def test_refusals_as_answered_match_the_declared_error_schema(spec: dict[str, Any], consortium: Consortium) -> None:
    """An unsigned call (401), a malformed body (422), a bad path parameter (422) and an unknown record (404)."""
    health = consortium.health
    key = consortium.key(health)
    answers = [
        ("post", "/v1/records", expect(httpx.post(health.url + "/v1/records", json={}, trust_env=False), 401)),
        ("post", "/v1/records", expect(signed(health, key, "POST", "/v1/records", {"category": 0}), 422)),
        ("get", "/v1/records/{record_id}",
         expect(signed(health, key, "GET", "/v1/records/" + "a" * 80), 422, "invalid_request")),
        ("get", "/v1/records/{record_id}", expect(signed(health, key, "GET", "/v1/records/0x" + "0" * 64), 404)),
    ]

    for method, path, answer in answers:
        status = {"unauthenticated": 401, "not_found": 404}.get(answer["error"], 422)
        assert _problems(spec, answer, _declared(spec, method, path, status)) == [], answer


def test_a_collected_record_answers_its_declared_schema(spec: dict[str, Any], consortium: Consortium) -> None:
    """POST /v1/records' answer and GET of the same record validate against the declared RecordOut."""
    health = consortium.health
    body = {"subject": Account.create().address, "category": CONTACT_TRACE, "payload": {"district": "north"}}
    created = signed(health, consortium.key(health), "POST", "/v1/records", body)
    assert created.status_code in (201, 202), created.text

    looked_up = expect(signed(health, consortium.key(health), "GET", f"/v1/records/{created.json()['record']}"), 200)

    assert _problems(spec, created.json(), _declared(spec, "post", "/v1/records", created.status_code)) == []
    assert _problems(spec, looked_up, _declared(spec, "get", "/v1/records/{record_id}", 200)) == []
    assert _resolve(spec, _declared(spec, "get", "/v1/records/{record_id}", 200))["title"] == "RecordOut"


DESCRIBED_ANSWERS = {
    ("get", "/v1/health"): "HealthOut", ("get", "/v1/ready"): "ReadyOut", ("get", "/v1/catalog"): "CatalogOut",
    ("post", "/v1/access"): "AccessOut", ("post", "/v1/access/batch"): "AccessBatchOut",
    ("get", "/v1/audit/accesses"): "AccessPageOut", ("get", "/v1/audit/refusals"): "RefusalPageOut",
    ("get", "/v1/subjects/me/history"): "HistoryOut",
}
"""Operations whose 200 answer is described field by field (not `{}` or a bare object)."""


def test_health_access_and_audit_listings_declare_their_200_answer_field_by_field(spec: dict[str, Any]) -> None:
    """Each names its model, whose schema lists properties, requires them and allows no others."""
    for (method, path), model in DESCRIBED_ANSWERS.items():
        declared = _declared(spec, method, path, 200)
        assert declared == {"$ref": f"#/components/schemas/{model}"}, (path, declared)
        schema = _resolve(spec, declared)
        assert schema["properties"] and schema["required"] and schema["additionalProperties"] is False, path


def test_health_access_and_audit_answers_match_their_declared_schemas(
    spec: dict[str, Any], consortium: Consortium, audited: Audited
) -> None:
    """Served answers validate against the declared models: an access and a batch of one by police of a fresh
    subject's open record, that subject's history, the auditor's listings, health, readiness and the catalog."""
    health, police = consortium.health, consortium.police
    subject = Account.create()
    first = consortium.ingest({"district": "West", "cases": 2}, category=DISTRICT_STATS, subject=subject.address)
    second = consortium.ingest({"district": "West", "cases": 3}, category=DISTRICT_STATS, subject=subject.address)
    item = {"record": second, "purpose": EPIDEMIC_CONTROL, "consents": []}
    auditor = audited.auditor.key
    answers = [
        ("post", "/v1/access", expect(consortium.access(police, first), 200)),
        ("post", "/v1/access/batch", expect(signed(police, consortium.key(police), "POST", "/v1/access/batch",
                                                   {"items": [item]}), 200)),
        ("get", "/v1/subjects/me/history", expect(signed(health, subject.key, "GET", "/v1/subjects/me/history"), 200)),
        ("get", "/v1/audit/accesses", expect(signed(health, auditor, "GET",
                                                    f"/v1/audit/accesses?subject={subject.address}"), 200)),
        ("get", "/v1/audit/refusals", expect(signed(health, auditor, "GET", "/v1/audit/refusals?limit=1000"), 200)),
        ("get", "/v1/health", expect(httpx.get(health.url + "/v1/health", trust_env=False, timeout=30), 200)),
        ("get", "/v1/ready", expect(httpx.get(health.url + "/v1/ready", trust_env=False, timeout=30), 200)),
        ("get", "/v1/catalog", expect(httpx.get(health.url + "/v1/catalog", trust_env=False, timeout=30), 200)),
    ]

    for method, path, answer in answers:
        assert _problems(spec, answer, _declared(spec, method, path, 200)) == [], (path, answer)
    history, page = answers[2][2], answers[3][2]
    assert sorted(line["record"] for line in history["items"]) == sorted([first, second])
    releases = {line["record"]: line["releases"] for line in page["items"]}
    assert set(releases) == {first, second} and all(releases.values())
    assert answers[4][2]["items"], "the audited fixture's refused attempts are listed"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_only_assets_this_gateway_serves(consortium: Consortium, page: str) -> None:
    """/docs and /redoc name no CDN (they work offline): each script, style and icon is same-origin and served."""
    with httpx.Client(base_url=consortium.health.url, trust_env=False, timeout=30) as browser:
        html = browser.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        served = {url: browser.get(url) for url in assets}
        kinds = {url: (r.status_code, r.headers["content-type"].split(";")[0]) for url, r in served.items()}

    assert "'/openapi.json'" in html.text or '"/openapi.json"' in html.text
    assert assets and all(url.startswith("/docs-assets/") for url in assets), assets
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    assert kinds == {url: (200, expected[url[url.rindex("."):]]) for url in assets}
