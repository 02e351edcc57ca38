"""A signed schemathesis run against the OpenAPI document as served: no server error, every answer as declared."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from consentledger.signing import sign_request

from .conftest import Audited
from .world import CHAIN_ID, Agency, Consortium

pytestmark = pytest.mark.process

EXAMPLES_PER_OPERATION = 12
"""Bounded so the whole run stays within a minute on the shared test machine."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
UNAVAILABLE = {502, 503, 504}
"""Declared answers of a chain or custodian that cannot be reached; the healthy consortium never gives one."""


def _send_signed(client: httpx.Client, agency: Agency, key: bytes, case: Case) -> httpx.Response:
    """Send `case` as schemathesis built it, signed over the path, query and body bytes as sent."""
    kwargs = case.as_transport_kwargs(base_url=agency.url)
    request = client.build_request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), json=kwargs.get("json"),
        content=kwargs.get("data") if isinstance(kwargs.get("data"), (bytes, str)) else None,
        headers=kwargs.get("headers"), cookies=kwargs.get("cookies"),
    )
    target = request.url.raw_path.decode("latin-1")
    signature = sign_request(key, chain_id=CHAIN_ID, audience=agency.address, method=request.method, path=target,
                             body=request.content, now=int(time.time()))
    request.headers.update(signature.headers())
    return client.send(request)


def _signer(consortium: Consortium, audited: Audited, path: str) -> bytes:
    """The auditor signs the audit listings and actor lookups; health's org key signs the rest."""
    if path.startswith(("/v1/audit/", "/v1/actors/")):
        return audited.auditor.key
    return consortium.key(consortium.health)


def test_a_signed_fuzz_of_every_operation_finds_no_server_error(consortium: Consortium, audited: Audited) -> None:
    """Each operation gets generated valid and invalid requests, signed; each answer is below 500, its status
    declared, its body matching the declared schema (the `Error` shape for every refusal)."""
    health = consortium.health
    spec: dict[str, Any] = httpx.get(health.url + "/openapi.json", trust_env=False, timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: dict[int, int] = {}

    with httpx.Client(trust_env=False, timeout=60) as client:
        for operation in operations:

            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                                  operation.as_strategy(GenerationMode.NEGATIVE)))
            def probe(case: Case) -> None:
                response = _send_signed(client, health, _signer(consortium, audited, case.path), case)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code not in UNAVAILABLE, (case.method, case.path, response.text[:300])
                case.validate_response(response, checks=CHECKS)

            probe()

    assert len(operations) >= 20
    assert sum(statuses.values()) >= len(operations) * 2
    assert any(200 <= status < 300 for status in statuses), statuses
