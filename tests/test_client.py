"""GatewayClient against in-test gateways that verify every signature with `signing.verify_request`."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from consentledger.client import GatewayClient
from consentledger.consent import REVOCATION_FIELDS, Consent, Eip712Domain, consent_id, consent_typed_data
from consentledger.errors import (
    AuthenticationError,
    ConfigurationError,
    GatewayError,
    GatewayUnavailableError,
    PayloadValidationError,
)
from consentledger.ports import held_port, hold_port
from consentledger.signing import HEADER_SIGNATURE, HEADER_SIGNER, RequestSignature, verify_request

CHAIN_ID = 1337
NOW = 1_800_000_000
RECORD = "0x" + "ab" * 32
DOMAIN = Eip712Domain("ConsentLedger", "1", CHAIN_ID, "0x" + "11" * 20)
PUBLIC_PATHS = {"/v1/health", "/v1/chain/domain", "/v1/catalog"}
CATALOG = {"block": 7, "block_time": NOW, "purposes": [
    {"id": 2, "name": "research", "sunset": None, "sunset_at": None, "active": True},
    {"id": 4, "name": "census", "sunset": NOW - 1, "sunset_at": "2027-01-15T07:59:59+00:00", "active": False},
], "categories": [
    {"id": 3, "name": "survey", "sensitivity": "open", "retention": 86400, "min_aggregate_subjects": 0,
     "fields": ["answer"], "identifying_fields": [], "allowed_purposes": [2, 4]},
]}
"""What the fake gateway's catalog holds: `_consent`'s category 3 for purpose 2, and purpose 4 past its sunset."""


def _account(label: str) -> LocalAccount:
    account: LocalAccount = Account.from_key(keccak(text=label))
    return account


def _wire_path(url: httpx.URL) -> str:
    """The path and query string as a Starlette server reports them (`url.path` + "?" + `url.query`)."""
    return url.path + ("?" + url.query.decode("ascii") if url.query else "")


@dataclass
class FakeGateway:
    """An httpx.MockTransport handler: verifies signatures, records requests, answers from a table."""

    org: LocalAccount
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    nonces: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.answers.setdefault(
            ("GET", "/v1/health"),
            (200, {"status": "ok", "org": self.org.address, "name": "Agency", "chain_id": CHAIN_ID, "block": 7}),
        )
        self.answers.setdefault(("GET", "/v1/chain/domain"), (200, DOMAIN.as_dict()))
        self.answers.setdefault(("GET", "/v1/catalog"), (200, CATALOG))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path not in PUBLIC_PATHS:
            try:
                signature = RequestSignature.from_headers(request.headers)
                signer = verify_request(
                    signature, chain_id=CHAIN_ID, audience=self.org.address, method=request.method,
                    path=_wire_path(request.url), body=request.content, now=NOW,
                )
            except AuthenticationError as exc:
                return httpx.Response(401, json={"error": exc.code, "detail": str(exc)})
            if signature.nonce in self.nonces:
                return httpx.Response(409, json={"error": "replayed_request", "detail": "nonce seen"})
            self.nonces.add(signature.nonce)
            self.signers.append(signer)
        status, answer = self.answers.get(
            (request.method, request.url.path), (404, {"error": "not_found", "detail": request.url.path})
        )
        if isinstance(answer, str):
            return httpx.Response(status, text=answer)
        return httpx.Response(status, json=answer)

    def count(self, path: str) -> int:
        """Return how many requests reached `path`."""
        return sum(1 for r in self.requests if r.url.path == path)

    def body(self, index: int = -1) -> Any:
        """Return the JSON body of a received request (the last by default)."""
        return json.loads(self.requests[index].content)


@pytest.fixture
def org() -> LocalAccount:
    """The gateway's organisation signer (the signatures' audience)."""
    return _account("org")


@pytest.fixture
def caller() -> LocalAccount:
    """The account the client signs with."""
    return _account("caller")


@pytest.fixture
def gateway(org: LocalAccount) -> FakeGateway:
    """A fake gateway that answers the API's success shapes."""
    record = {"record": RECORD, "state": "registered", "commitment": "0x" + "cd" * 32, "category": 3,
              "subject": _account("subject").address}
    return FakeGateway(org, {
        ("POST", "/v1/records"): (201, record),
        ("GET", f"/v1/records/{RECORD}"): (200, record),
        ("POST", "/v1/consents"): (201, {"consent": "0x" + "01" * 32, "status": "granted"}),
        ("POST", "/v1/consents/revoke"): (200, {"consent": "0x" + "01" * 32, "status": "revoked"}),
        ("POST", "/v1/access"): (200, {"record": RECORD, "seq": 1, "tx": "0x" + "02" * 32, "block": 9,
                                       "payload": {"name": "Zoë"}, "category": 3, "custodian": org.address}),
        ("POST", "/v1/echo"): (200, {"ok": True}),
    })


@pytest.fixture
def client(gateway: FakeGateway, caller: LocalAccount) -> Iterator[GatewayClient]:
    """A client of the fake gateway whose clock agrees with it."""
    with GatewayClient(
        "http://gateway.test", caller, clock=lambda: NOW, transport=httpx.MockTransport(gateway.handle)
    ) as gateway_client:
        yield gateway_client


def _consent(subject: LocalAccount, grantee: LocalAccount) -> Consent:
    return Consent.new(subject=subject.address, grantee=grantee.address, category=3, purpose=2,
                       valid_until=NOW + 3600, max_uses=2)


# -- signing ----------------------------------------------------------------------------------------


def test_signed_request_verifies_for_exact_body_and_path_with_query(
    client: GatewayClient, gateway: FakeGateway, caller: LocalAccount, org: LocalAccount
) -> None:
    """The gateway recovers the caller from the compact JSON bytes and the path including its query."""
    client.send_signed("POST", "/v1/echo?since=5&who=a%20b", {"b": [1, 2], "a": "Zoë"})

    request = gateway.requests[-1]
    assert gateway.signers == [caller.address]
    assert request.content == json.dumps({"b": [1, 2], "a": "Zoë"}, separators=(",", ":")).encode()
    assert request.headers["Content-Type"] == "application/json"
    signature = RequestSignature.from_headers(request.headers)
    assert signature.audience == org.address
    for path, body in (("/v1/echo", request.content), (_wire_path(request.url), request.content + b" ")):
        with pytest.raises(AuthenticationError, match="does not match its signer"):
            verify_request(signature, chain_id=CHAIN_ID, audience=org.address, method="POST", path=path,
                           body=body, now=NOW)


def test_signed_get_has_no_body_and_verifies(client: GatewayClient, gateway: FakeGateway, caller: LocalAccount) -> None:
    """A bodyless request signs the empty body and sends no Content-Type."""
    assert client.get_record(RECORD)["state"] == "registered"

    request = gateway.requests[-1]
    assert request.content == b"" and "Content-Type" not in request.headers
    assert gateway.signers == [caller.address]


def test_each_request_gets_a_fresh_nonce(client: GatewayClient, gateway: FakeGateway) -> None:
    """Two identical calls carry different nonces and signatures, so neither is refused as a replay."""
    client.get_record(RECORD)
    client.get_record(RECORD)

    assert len(gateway.nonces) == 2
    assert gateway.requests[-1].headers[HEADER_SIGNATURE] != gateway.requests[-2].headers[HEADER_SIGNATURE]


def test_public_reads_are_unsigned(client: GatewayClient, gateway: FakeGateway) -> None:
    """/v1/health and /v1/chain/domain carry no signature headers."""
    client.health()
    assert client.domain() == DOMAIN

    assert all(HEADER_SIGNER not in r.headers for r in gateway.requests)


# -- identity (health) ------------------------------------------------------------------------------


def test_health_is_fetched_once_and_cached(client: GatewayClient, gateway: FakeGateway) -> None:
    """The audience and chain id come from one /v1/health call, however many requests follow."""
    client.get_record(RECORD)
    client.put_record(_account("subject").address, 3, {"name": "Zoë"})
    client.request_access(RECORD, 2)

    assert gateway.count("/v1/health") == 1
    assert len(gateway.signers) == 3


def test_given_audience_and_chain_id_skip_health(gateway: FakeGateway, caller: LocalAccount, org: LocalAccount) -> None:
    """A client told whom it talks to never asks /v1/health."""
    with GatewayClient("http://gateway.test", caller, audience=org.address.lower(), chain_id=CHAIN_ID,
                       clock=lambda: NOW, transport=httpx.MockTransport(gateway.handle)) as client:
        client.get_record(RECORD)

    assert gateway.count("/v1/health") == 0
    assert gateway.signers == [caller.address]


def test_wrong_audience_is_refused_by_the_gateway(gateway: FakeGateway, caller: LocalAccount) -> None:
    """A request signed for another gateway's org fails as a 401 GatewayError."""
    with GatewayClient("http://gateway.test", caller, audience=_account("elsewhere").address, chain_id=CHAIN_ID,
                       clock=lambda: NOW, transport=httpx.MockTransport(gateway.handle)) as client:
        with pytest.raises(GatewayError, match="signed for another gateway") as caught:
            client.get_record(RECORD)

    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")


def test_malformed_health_is_a_gateway_error(gateway: FakeGateway, client: GatewayClient) -> None:
    """A health answer without an org address cannot give an audience: GatewayError, not a crash."""
    gateway.answers[("GET", "/v1/health")] = (200, {"status": "ok"})

    with pytest.raises(GatewayError, match="malformed_response"):
        client.get_record(RECORD)


# -- errors -----------------------------------------------------------------------------------------


def test_json_error_answer_becomes_gateway_error(client: GatewayClient, gateway: FakeGateway) -> None:
    """A 4xx `{error, detail}` answer raises GatewayError carrying status, code and detail (exit 15)."""
    gateway.answers[("POST", "/v1/access")] = (
        403, {"error": "rule_violated", "detail": "ConsentExpired", "rule": "ConsentExpired"}
    )

    with pytest.raises(GatewayError, match="^HTTP 403 rule_violated: ConsentExpired$") as caught:
        client.request_access(RECORD, 2)

    error = caught.value
    assert (error.status, error.code, error.detail, error.exit_code) == (403, "rule_violated", "ConsentExpired", 15)
    assert error.rule == "ConsentExpired"


def test_non_json_error_answer_becomes_gateway_error(client: GatewayClient, gateway: FakeGateway) -> None:
    """A proxy's HTML error page still raises GatewayError, with the text as detail."""
    gateway.answers[("GET", f"/v1/records/{RECORD}")] = (502, "<html>\n Bad   Gateway </html>")

    with pytest.raises(GatewayError, match="^HTTP 502 http_error: <html> Bad Gateway </html>$") as caught:
        client.get_record(RECORD)

    assert caught.value.rule is None


def test_success_answer_that_is_not_an_object_is_a_gateway_error(client: GatewayClient, gateway: FakeGateway) -> None:
    """A 2xx answer that is not a JSON object breaks the contract: GatewayError malformed_response."""
    gateway.answers[("GET", f"/v1/records/{RECORD}")] = (200, "ok")

    with pytest.raises(GatewayError) as caught:
        client.get_record(RECORD)

    assert (caught.value.status, caught.value.code) == (200, "malformed_response")


def test_connection_refused_raises_gateway_unavailable(caller: LocalAccount) -> None:
    """Nothing listening on the port: GatewayUnavailableError naming the URL (exit 16)."""
    with hold_port() as closed:  # held, not listening: refused, and no other process can serve it meanwhile
        url = f"http://127.0.0.1:{held_port(closed)}"
        with GatewayClient(url, caller, timeout=5) as client:
            with pytest.raises(GatewayUnavailableError, match=f"^cannot reach gateway at {url}: ") as caught:
                client.get_record(RECORD)

    assert caught.value.exit_code == 16


def test_timeout_raises_gateway_unavailable(caller: LocalAccount, org: LocalAccount) -> None:
    """A gateway that does not answer in time is unavailable, not a traceback."""
    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with GatewayClient("http://gateway.test", caller, audience=org.address, chain_id=CHAIN_ID, timeout=2,
                       transport=httpx.MockTransport(silent)) as client:
        with pytest.raises(GatewayUnavailableError, match="no answer within 2 s"):
            client.get_record(RECORD)


def test_bad_arguments_are_refused_before_sending(client: GatewayClient, gateway: FakeGateway) -> None:
    """Malformed record ids and addresses raise ConfigurationError and reach no gateway."""
    with pytest.raises(ConfigurationError, match="record id is 32 bytes"):
        client.get_record("0x1234/../health")
    with pytest.raises(ConfigurationError, match="subject must be"):
        client.put_record("not-an-address", 3, {})

    assert gateway.requests == []


def test_bad_base_url_is_a_configuration_error(caller: LocalAccount) -> None:
    """A gateway URL without http(s) scheme and host is refused at construction."""
    with pytest.raises(ConfigurationError, match="bad gateway URL"):
        GatewayClient("localhost:8000", caller)


# -- the API calls ----------------------------------------------------------------------------------


def test_put_record_sends_the_contract_body(client: GatewayClient, gateway: FakeGateway) -> None:
    """subject is checksummed and derived_from ids are 0x hex, whether given as bytes or text."""
    subject = _account("subject").address
    result = client.put_record(subject.lower(), 3, {"name": "Zoë"}, derived_from=[bytes(32), RECORD.upper()[2:]])

    assert result["record"] == RECORD
    assert gateway.body() == {
        "subject": subject, "category": 3, "payload": {"name": "Zoë"},
        "derived_from": ["0x" + "00" * 32, RECORD],
    }


def test_idempotency_key_is_forwarded(client: GatewayClient, gateway: FakeGateway) -> None:
    """put_record sends Idempotency-Key when given, and no such header otherwise."""
    subject = _account("subject").address
    client.put_record(subject, 3, {"name": "Zoë"}, idempotency_key="batch-7/row-12")
    client.put_record(subject, 3, {"name": "Zoë"})

    keyed, unkeyed = (r for r in gateway.requests if r.url.path == "/v1/records")
    assert keyed.headers["Idempotency-Key"] == "batch-7/row-12"
    assert "Idempotency-Key" not in unkeyed.headers


def test_request_access_sends_consents_as_json(
    client: GatewayClient, gateway: FakeGateway, caller: LocalAccount
) -> None:
    """The access body names record, purpose and every consent in `Consent.to_json()` form."""
    consents = [_consent(_account("subject"), caller), _consent(_account("source subject"), caller)]

    result = client.request_access(bytes.fromhex(RECORD[2:]), 2, consents)

    assert result["payload"] == {"name": "Zoë"}
    assert gateway.body() == {"record": RECORD, "purpose": 2, "consents": [c.to_json() for c in consents],
                              "withhold": "remove"}
    client.request_access(bytes.fromhex(RECORD[2:]), 2, consents, pseudonymise=True)
    assert gateway.body()["withhold"] == "pseudonymise"
    assert [Consent.from_json(c) for c in gateway.body()["consents"]] == consents


def test_sign_and_grant_signs_consent_in_the_gateways_domain(gateway: FakeGateway, org: LocalAccount) -> None:
    """The relayed signature recovers to the subject over the consent in the ledger's EIP-712 domain."""
    subject = _account("subject")
    consent = _consent(subject, org)
    with GatewayClient("http://gateway.test", subject, clock=lambda: NOW,
                       transport=httpx.MockTransport(gateway.handle)) as client:
        assert client.sign_and_grant(consent)["status"] == "granted"

    body = gateway.body()
    assert Consent.from_json(body["consent"]) == consent
    signable = encode_typed_data(full_message=consent_typed_data(consent, DOMAIN))
    assert Account.recover_message(signable, signature=bytes.fromhex(body["signature"][2:])) == subject.address
    assert gateway.signers == [subject.address]


@pytest.mark.parametrize(("terms", "problem"), [
    ({"category": 9}, "category 9 is not in the catalog: no consent can be given for it; the catalog's categories: "
                      "3 survey"),
    ({"purpose": 5}, "purpose 5 is not in the catalog: no consent can be given for it; purposes category 3 (survey) "
                     "allows now: 2 research"),
    ({"purpose": 4}, "purpose 4 (census) ended at 2027-01-15T07:59:59+00:00: no consent for it; purposes category 3 "
                     "(survey) allows now: 2 research"),
])
def test_sign_and_grant_refuses_terms_off_the_catalog_before_signing(
    gateway: FakeGateway, org: LocalAccount, terms: dict[str, int], problem: str
) -> None:
    """Judged at the catalog's block time: PayloadValidationError naming what is allowed; only the catalog was read."""
    subject = _account("subject")
    consent = dataclasses.replace(_consent(subject, org), **terms)
    with GatewayClient("http://gateway.test", subject, clock=lambda: NOW,
                       transport=httpx.MockTransport(gateway.handle)) as client:
        with pytest.raises(PayloadValidationError) as refused:
            client.sign_and_grant(consent)

    assert str(refused.value) == problem
    assert [r.url.path for r in gateway.requests] == ["/v1/catalog"]


def test_sign_and_revoke_signs_the_revocation_of_the_consent_id(gateway: FakeGateway, org: LocalAccount) -> None:
    """The revocation signature recovers to the subject over `Revocation(consent id)`."""
    subject = _account("subject")
    consent = _consent(subject, org)
    with GatewayClient("http://gateway.test", subject, clock=lambda: NOW,
                       transport=httpx.MockTransport(gateway.handle)) as client:
        assert client.sign_and_revoke(consent)["status"] == "revoked"

    body = gateway.body()
    assert gateway.requests[-1].url.path == "/v1/consents/revoke"
    signable = encode_typed_data(DOMAIN.as_dict(), {"Revocation": REVOCATION_FIELDS},
                                 {"consent": consent_id(consent, DOMAIN)})
    assert Account.recover_message(signable, signature=bytes.fromhex(body["signature"][2:])) == subject.address


def test_request_erasure_revokes_every_live_consent_the_gateway_lists(gateway: FakeGateway, org: LocalAccount) -> None:
    """The erasure body carries each listed consent with the subject's signature over `Revocation(consent id)`."""
    subject = _account("subject")
    consents = [_consent(subject, org), _consent(subject, _account("police"))]
    listed = [{"id": "0x" + consent_id(c, DOMAIN).hex(), "consent": c.to_json()} for c in consents]
    gateway.answers[("GET", "/v1/subjects/me/consents")] = (200, {"subject": subject.address, "consents": listed})
    gateway.answers[("POST", "/v1/subjects/me/erasure")] = (202, {"subject": subject.address, "records": []})
    with GatewayClient("http://gateway.test", subject, clock=lambda: NOW,
                       transport=httpx.MockTransport(gateway.handle)) as client:
        assert client.request_erasure() == {"subject": subject.address, "records": []}

    revocations = gateway.body()["revocations"]
    assert [Consent.from_json(r["consent"]) for r in revocations] == consents
    for revocation, consent in zip(revocations, consents, strict=True):
        signable = encode_typed_data(DOMAIN.as_dict(), {"Revocation": REVOCATION_FIELDS},
                                     {"consent": consent_id(consent, DOMAIN)})
        assert Account.recover_message(signable, signature=bytes.fromhex(revocation["signature"][2:])) == (
            subject.address)
    assert gateway.signers == [subject.address, subject.address]


def test_sign_and_grant_refuses_another_subjects_consent(client: GatewayClient, gateway: FakeGateway) -> None:
    """A key that is not the consent's subject cannot sign it: ConfigurationError, nothing sent."""
    consent = _consent(_account("subject"), _account("org"))

    with pytest.raises(ConfigurationError, match="consent's subject is"):
        client.sign_and_grant(consent)

    assert gateway.requests == []


def test_domain_is_fetched_once(client: GatewayClient, gateway: FakeGateway) -> None:
    """The EIP-712 domain does not change: one /v1/chain/domain call serves every signature."""
    assert client.domain() == client.domain() == DOMAIN

    assert gateway.count("/v1/chain/domain") == 1


# -- over real HTTP ---------------------------------------------------------------------------------


def _live_app(org: LocalAccount) -> FastAPI:
    """A FastAPI gateway stand-in that verifies signatures from what Starlette reports of the request."""
    app = FastAPI()

    @app.exception_handler(AuthenticationError)
    async def refuse(request: Request, exc: AuthenticationError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": str(exc)}, status_code=exc.http_status)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "org": org.address, "name": "Agency", "chain_id": CHAIN_ID, "block": 1}

    @app.api_route("/v1/probe", methods=["GET", "POST"])
    async def probe(request: Request) -> dict[str, Any]:
        body = await request.body()
        path = request.url.path + ("?" + request.url.query if request.url.query else "")
        signer = verify_request(
            RequestSignature.from_headers(request.headers), chain_id=CHAIN_ID, audience=org.address,
            method=request.method, path=path, body=body, now=int(time.time()),
        )
        return {"signer": signer, "path": path, "body": body.decode()}

    return app


@pytest.fixture(scope="module")
def live_gateway() -> Iterator[str]:
    """A uvicorn server on a free local port, running the stand-in app on a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_live_app(_account("org")), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test gateway did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_real_http_server_verifies_path_query_and_body(live_gateway: str, caller: LocalAccount) -> None:
    """Over real HTTP a Starlette app recovers the caller from its own view of path, query and body."""
    with GatewayClient(live_gateway, caller) as client:
        answer = client.send_signed("POST", "/v1/probe?seq=3&purpose=2", {"record": RECORD}).json()
        bodyless = client.send_signed("GET", "/v1/probe").json()

    assert answer == {"signer": caller.address, "path": "/v1/probe?seq=3&purpose=2",
                      "body": json.dumps({"record": RECORD}, separators=(",", ":"))}
    assert bodyless == {"signer": caller.address, "path": "/v1/probe", "body": ""}


def test_real_http_server_refusal_is_a_gateway_error(live_gateway: str, caller: LocalAccount) -> None:
    """A real 401 answer from a Starlette app arrives as GatewayError with its code and detail."""
    with GatewayClient(live_gateway, caller, clock=lambda: time.time() - 3600) as client:
        with pytest.raises(GatewayError, match="outside the") as caught:
            client.send_signed("GET", "/v1/probe")

    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")
