"""GatewayClient: signed calls to an agency gateway's HTTP API, answers as dicts, failures as our errors.

Every request except the public reads (`/v1/health`, `/v1/chain/domain`, `/v1/catalog`) carries an EIP-712
`GatewayRequest` signature (see `consentledger.signing`) by the client's account, naming the gateway's
organisation as audience. The signed path is the request target exactly as sent on the wire: path and
query string, including any path prefix in `base_url` (point `base_url` at the gateway's root).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from consentledger.attestation import RecordAttestation, sign_attestation
from consentledger.catalog import Catalog
from consentledger.consent import Consent, Eip712Domain, consent_id, sign_consent, sign_revocation
from consentledger.errors import ConfigurationError, GatewayError, GatewayUnavailableError
from consentledger.signing import sign_request
from consentledger.types import Address, RecordId

HEALTH_PATH = "/v1/health"
DOMAIN_PATH = "/v1/chain/domain"
CATALOG_PATH = "/v1/catalog"
IDEMPOTENCY_HEADER = "Idempotency-Key"
BATCH_LIMIT = 256
"""Most accesses one `POST /v1/access/batch` call carries (the gateway's `max_batch_items` at most)."""


class GatewayClient:
    """A caller of one gateway, signing as `account` (an agency's registered client, a member, or a data subject).

    The gateway's organisation address (the signatures' audience) and chain id are fetched once from
    `/v1/health` when not given. Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        base_url: str,
        account: LocalAccount,
        *,
        audience: str | None = None,
        chain_id: int | None = None,
        timeout: float = 60,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            url = httpx.URL()
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError(f"bad gateway URL {base_url!r}: use e.g. http://127.0.0.1:8000")
        self.base_url = base_url.rstrip("/")
        self.account = account
        self._audience = parse_address(audience, "audience") if audience is not None else None
        self._chain_id = chain_id
        self._timeout = timeout
        self._clock = clock
        self._domain: Eip712Domain | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- public reads ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Return the gateway's `/v1/health` answer (status, org, name, chain_id, block), fetched now.

        The first answer also supplies the audience and chain id this client signs for, unless they
        were given to the constructor.
        """
        response = self._send(self._http.build_request("GET", HEALTH_PATH))
        info = self._json(response)
        org, chain_id = info.get("org"), info.get("chain_id")
        if not isinstance(org, str) or not is_address(org) or not isinstance(chain_id, int):
            raise GatewayError(
                response.status_code, "malformed_response", f"{HEALTH_PATH} lacks a valid org address or chain_id"
            )
        if self._audience is None:
            self._audience = Address(to_checksum_address(org))
        if self._chain_id is None:
            self._chain_id = chain_id
        return info

    def domain(self) -> Eip712Domain:
        """Return the ledger's EIP-712 domain as the gateway reports it (fetched once, then cached)."""
        if self._domain is None:
            response = self._send(self._http.build_request("GET", DOMAIN_PATH))
            data = self._json(response)
            try:
                self._domain = Eip712Domain(
                    name=str(data["name"]),
                    version=str(data["version"]),
                    chain_id=int(data["chainId"]),
                    verifying_contract=to_checksum_address(data["verifyingContract"]),
                )
            except (KeyError, TypeError, ValueError):
                raise GatewayError(
                    response.status_code, "malformed_response", f"{DOMAIN_PATH} is not an EIP-712 domain"
                ) from None
        return self._domain

    def catalog(self) -> Catalog:
        """Return the positive list as the gateway's chain view has it at the latest block (fetched now)."""
        response = self._send(self._http.build_request("GET", CATALOG_PATH))
        try:
            return Catalog.from_json(self._json(response))
        except (KeyError, TypeError, ValueError):
            raise GatewayError(response.status_code, "malformed_response", f"{CATALOG_PATH} is not a catalog") from None

    # -- records --------------------------------------------------------------------------------

    def put_record(
        self,
        subject: str,
        category: int,
        payload: Mapping[str, Any],
        *,
        derived_from: Iterable[str | bytes] = (),
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Return the stored record's `{record, state, commitment, category, subject}`.

        `state` is "registered" once the chain write is mined, "pending" while it is queued. Retrying
        with the same `idempotency_key` returns the first answer instead of storing a second record.
        """
        body = {
            "subject": parse_address(subject, "subject"),
            "category": category,
            "payload": dict(payload),
            "derived_from": [record_hex(parse_record_id(source)) for source in derived_from],
        }
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        return self._json(self.send_signed("POST", "/v1/records", body, headers))

    def put_aggregate(
        self,
        category: int,
        payload: Mapping[str, Any],
        derived_from: Iterable[str | bytes],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Register an anonymous aggregate of `derived_from` (at least the category's K distinct subjects).

        It names no subject and is shared without consent while its sources live; answers as `put_record`.
        """
        body = {
            "category": category,
            "payload": dict(payload),
            "derived_from": [record_hex(parse_record_id(source)) for source in derived_from],
            "aggregate": True,
        }
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        return self._json(self.send_signed("POST", "/v1/records", body, headers))

    def get_record(self, record_id: str | bytes) -> dict[str, Any]:
        """Return one of this organisation's records, in the shape `put_record` returns."""
        return self._json(self.send_signed("GET", f"/v1/records/{record_hex(parse_record_id(record_id))}"))

    def attestation_terms(self, record_id: str | bytes) -> dict[str, Any]:
        """Return `{record, subject, attested, terms}`: what the record's subject signs to attest it."""
        path = f"/v1/records/{record_hex(parse_record_id(record_id))}/attestation"
        return self._json(self.send_signed("GET", path))

    def attest_record(self, record_id: str | bytes, signature: bytes | str | None = None) -> dict[str, Any]:
        """Return the record's attestation view with `tx` and `block` after relaying its subject's attestation.

        Without `signature`, this client's account signs as the record's subject: it reads the terms
        from the gateway and signs them only if it is that subject (ConfigurationError otherwise).
        Terms that differ from the chain's cannot attest anything: the gateway and the contract
        check the signature against the record as registered.
        """
        rid = record_hex(parse_record_id(record_id))
        if signature is None:
            view = self.attestation_terms(rid)
            terms = RecordAttestation.from_json(view["terms"])
            if terms.record.hex() != rid[2:] or to_checksum_address(view["subject"]) != self.account.address:
                raise ConfigurationError(
                    f"record {rid}'s subject is {view['subject']} but the signing key is {self.account.address}"
                )
            signature = sign_attestation(terms, self.account.key, self.domain())
        return self._json(self.send_signed("POST", f"/v1/records/{rid}/attestation", {"signature": _hex(signature)}))

    def my_records(self) -> dict[str, Any]:
        """Return `{subject, records}`: the live records held at this gateway about the signer, with their terms."""
        return self._json(self.send_signed("GET", "/v1/subjects/me/records"))

    # -- consents -------------------------------------------------------------------------------

    def grant_consent(self, consent: Consent, signature: bytes | str) -> dict[str, Any]:
        """Return `{consent: id, status: "granted"}` after relaying the subject's signed consent."""
        body = {"consent": consent.to_json(), "signature": _hex(signature)}
        return self._json(self.send_signed("POST", "/v1/consents", body))

    def revoke_consent(self, consent: Consent, signature: bytes | str) -> dict[str, Any]:
        """Return `{consent: id, status: "revoked"}` after relaying the subject's signed revocation."""
        body = {"consent": consent.to_json(), "signature": _hex(signature)}
        return self._json(self.send_signed("POST", "/v1/consents/revoke", body))

    def sign_and_grant(self, consent: Consent, *, check_catalog: bool = True) -> dict[str, Any]:
        """Return `grant_consent`'s answer for `consent`, signed by this client's account as its subject.

        First (unless `check_catalog` is False: the caller did it) `check_terms`: a consent no access
        could use is neither signed nor sent.
        """
        self._check_subject(consent)
        if check_catalog:
            self.check_terms(consent)
        return self.grant_consent(consent, sign_consent(consent, self.account.key, self.domain()))

    def check_terms(self, consent: Consent) -> None:
        """Return if the gateway's catalog lets `consent` be used; PayloadValidationError naming why not otherwise.

        Refused: a category or purpose not in the catalog, a purpose the category does not allow, one past
        its sunset at the latest block (the gateway refuses these too, but only after the subject signed).
        """
        self.catalog().check_use(consent.category, consent.purpose)

    def sign_and_revoke(self, consent: Consent) -> dict[str, Any]:
        """Return `revoke_consent`'s answer for `consent`, the revocation signed by this client's account."""
        self._check_subject(consent)
        domain = self.domain()
        signature = sign_revocation(consent_id(consent, domain), self.account.key, domain)
        return self.revoke_consent(consent, signature)

    # -- access ---------------------------------------------------------------------------------

    def request_access(
        self, record_id: str | bytes, purpose: int, consents: Iterable[Consent] = (), *, pseudonymise: bool = False,
        idempotency_key: str | None = None, mandate: int | None = None, override_justification: str | None = None,
    ) -> dict[str, Any]:
        """Return the released record: `{record, seq, tx, block, payload, category, custodian, identified, actor, use,
        basis}` (with `mandate` or `override` for those bases).

        The gateway records the access on chain first; `seq`, `tx` and `block` locate that entry.
        The legal basis is `consents` (none for an OPEN category), a statutory `mandate` id, or an
        emergency override justified by `override_justification` (the client needs the emergency
        role; the text stays with this agency, its salted hash goes on chain): one of them.
        Unless the access is `identified`, the category's identifying fields are removed, or with
        `pseudonymise` replaced by pseudonyms stable for this requester. `use` "immediate" (PROTECTED
        records) means the payload is for this use only: do not keep it. A retry with the same
        `idempotency_key` (and the same arguments) answers the access the first call recorded.
        """
        consents = tuple(consents)
        if (mandate is not None) + (override_justification is not None) + bool(consents) > 1:
            raise ConfigurationError("an access is asked under consents, a mandate or an override: give one of them")
        body = AccessAsk(record_id, purpose, consents, pseudonymise).to_json()
        if mandate is not None:
            body = {**_without_consents(body), "mandate": mandate}
        elif override_justification is not None:
            body = {**_without_consents(body), "override": {"justification": override_justification}}
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        return self._json(self.send_signed("POST", "/v1/access", body, headers))

    def resume_access(
        self, record_id: str | bytes, seq: int, consents: Iterable[Consent] = (), *, pseudonymise: bool = False,
    ) -> dict[str, Any]:
        """Return access (record, seq), already on chain, as `request_access` answers it; nothing is recorded anew.

        For an access whose record did not arrive (the custodian was unreachable); `consents` are
        the ones it presented, in order. Only the client that made the access may resume it.
        """
        body = {
            "record": record_hex(parse_record_id(record_id)),
            "seq": seq,
            "consents": [consent.to_json() for consent in consents],
            "withhold": "pseudonymise" if pseudonymise else "remove",
        }
        return self._json(self.send_signed("POST", "/v1/access/resume", body))

    def request_access_batch(
        self, asks: Iterable[AccessAsk], *, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Return one answer per ask, in order: the released record (as `request_access`) or its refusal.

        Each answer carries `status`, the HTTP status the single call would have answered; a
        refusal has `error` and `detail` (and `rule` when a contract rule fired). The asks go in
        calls of at most BATCH_LIMIT; each call's accesses are recorded on chain together, and with
        `idempotency_key` (the n-th call's key is "KEY/n") a retry records none of them again.
        """
        bodies = [ask.to_json() for ask in asks]
        answers: list[dict[str, Any]] = []
        for start in range(0, len(bodies), BATCH_LIMIT):
            chunk = bodies[start:start + BATCH_LIMIT]
            headers = {IDEMPOTENCY_HEADER: f"{idempotency_key}/{start // BATCH_LIMIT}"} if idempotency_key else None
            items = self._json(self.send_signed("POST", "/v1/access/batch", {"items": chunk}, headers)).get("items")
            if not isinstance(items, list) or len(items) != len(chunk):
                raise GatewayError(502, "gateway_error", "the batch answer does not hold one item per access asked")
            answers.extend(items)
        return answers

    # -- audit ----------------------------------------------------------------------------------

    def audit_accesses(
        self,
        *,
        subject: str | None = None,
        record: str | bytes | None = None,
        org: str | None = None,
        purpose: int | str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Return one page `{items, limit, offset, next_offset, block}` of accesses (the caller is an auditor).

        Each item is a trace line (seq, time, record, subject, requester, purpose, consent, tx_hash,
        block, ...); filters left None match anything; `since` and `until` are unix seconds.
        """
        return self._audit_page("/v1/audit/accesses", subject=subject, record=record, org=org, purpose=purpose,
                                since=since, until=until, limit=limit, offset=offset)

    def audit_refusals(self, **filters: Any) -> dict[str, Any]:
        """Return one page `{items, limit, offset, next_offset, block}` of refused attempts (the caller is an auditor).

        Takes `audit_accesses`' filters; each item is a refusal line (time, record, requester,
        requester_name, actor, purpose, rule, rule_args, why, tx_hash, block, ...).
        """
        return self._audit_page("/v1/audit/refusals", **filters)

    def _audit_page(
        self,
        path: str,
        *,
        subject: str | None = None,
        record: str | bytes | None = None,
        org: str | None = None,
        purpose: int | str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        filters = {
            "subject": parse_address(subject, "subject") if subject is not None else None,
            "record": record_hex(parse_record_id(record)) if record is not None else None,
            "org": parse_address(org, "org") if org is not None else None,
            "purpose": purpose, "since": since, "until": until, "limit": limit, "offset": offset,
        }
        query = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        return self._json(self.send_signed("GET", f"{path}?{query}"))

    def audit_override(self, record_id: str | bytes, seq: int) -> dict[str, Any]:
        """Return `{record, seq, justification, salt, hash, actor, recorded_at, tx, block}` of an emergency override
        (ask the requester's gateway; the caller is an auditor): keccak256(salt ‖ justification) is `hash`."""
        record = record_hex(parse_record_id(record_id))
        return self._json(self.send_signed("GET", f"/v1/audit/overrides/{record}/{seq}"))

    def audit_verify(self) -> dict[str, Any]:
        """Return the gateway's verification report: `{ok, block, counts, discrepancies, ...}` (auditors)."""
        return self._json(self.send_signed("GET", "/v1/audit/verify"))

    def my_history(self) -> dict[str, Any]:
        """Return `{subject, block, items, records}`: every access to this account's records, with heads."""
        return self._json(self.send_signed("GET", "/v1/subjects/me/history"))

    def receipt(self, record: str | bytes, seq: int) -> dict[str, Any]:
        """Return the offline receipt of access `seq` to `record` (for its subject, requester, custodian, auditors).

        `consentledger.receipts.Receipt.from_json` reads it; `verify_receipt` checks it with no node.
        """
        record_hex = record if isinstance(record, str) else "0x" + bytes(record).hex()
        return self._json(self.send_signed("GET", f"/v1/receipts/{record_hex}/{seq}"))

    def my_consents(self) -> dict[str, Any]:
        """Return `{subject, block, block_time, consents}`: this account's live consents, per the gateway's index.

        Each item is `{id, consent, granted_tx, granted_block}`, `consent` in `Consent.to_json()` form.
        """
        return self._json(self.send_signed("GET", "/v1/subjects/me/consents"))

    def request_erasure(self) -> dict[str, Any]:
        """Return the erasure's outcome `{subject, block, records, consents}` after asking the gateway to erase.

        Fetches this account's live consents, signs a revocation of each (the gateway refuses an
        erasure that leaves one live) and sends them with the request. The gateway shreds and
        tombstones (ERASURE) the account's records it holds and relays the revocations; each listed
        record and consent says whether its tombstone / revocation is on chain yet (tx, block).
        """
        domain = self.domain()
        revocations = []
        for item in self.my_consents().get("consents", []):
            consent = Consent.from_json(item["consent"])
            self._check_subject(consent)
            signature = sign_revocation(consent_id(consent, domain), self.account.key, domain)
            revocations.append({"consent": consent.to_json(), "signature": _hex(signature)})
        return self._json(self.send_signed("POST", "/v1/subjects/me/erasure", {"revocations": revocations}))

    def sweep(self, batch: int | None = None) -> dict[str, Any]:
        """Return the report of a sweep run now by the gateway of this client's organisation (its own key only).

        `{swept, block, block_time, shredded: [{record, reason}], requeued, queued}`.
        """
        return self._json(self.send_signed("POST", "/v1/sweep", {} if batch is None else {"batch": batch}))

    def open_audit_page(self, view: str | None = None) -> dict[str, Any]:
        """Return `{url, view, viewer, expires_at}`: a one-time link to the gateway's audit page.

        `view` is "audit" (every access; the caller is an auditor) or "subject" (the caller's own
        records); None lets the gateway choose by the caller's roles. The link opens once, in one browser.
        """
        return self._json(self.send_signed("POST", "/v1/audit/session", {} if view is None else {"view": view}))

    def clients(self) -> dict[str, Any]:
        """Return `{org, clients}`: the gateway's registered clients and their actors (its audit liaison only)."""
        return self._json(self.send_signed("GET", "/v1/clients"))

    def who_is(self, actor: str | bytes) -> dict[str, Any]:
        """Return `{statement, signature, revoked_at}`: the agency's signed statement of who `actor` is (auditors)."""
        actor_hex = actor if isinstance(actor, str) else "0x" + actor.hex()
        return self._json(self.send_signed("GET", f"/v1/actors/{actor_hex}"))

    # -- the signed transport -------------------------------------------------------------------

    def send_signed(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Return the gateway's 2xx answer to a request signed by this client's account.

        `path` may carry a query string; `json_body` (if not None) is serialised once, compactly, and
        those exact bytes are both signed and sent. Raises `GatewayError` for a non-2xx answer and
        `GatewayUnavailableError` when the gateway cannot be reached.
        """
        audience, chain_id = self._identity()
        method = method.upper()
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode("utf-8")
        request = self._http.build_request(method, path, content=body or None, headers=headers)
        if body:
            request.headers["Content-Type"] = "application/json"
        signature = sign_request(
            self.account.key,
            chain_id=chain_id,
            audience=audience,
            method=method,
            path=request.url.raw_path.decode("ascii"),
            body=body,
            now=int(self._clock()),
        )
        request.headers.update(signature.headers())
        return self._send(request)

    def call(self, method: str, path: str, json_body: Any = None) -> dict[str, Any]:
        """Return the JSON object a gateway answers to a signed request (as `send_signed`, which raises alike)."""
        return self._json(self.send_signed(method, path, json_body))

    def _identity(self) -> tuple[str, int]:
        """Return (audience, chain id), asking `/v1/health` only if either is still unknown."""
        if self._audience is None or self._chain_id is None:
            self.health()
        assert self._audience is not None and self._chain_id is not None  # health() sets both or raises
        return self._audience, self._chain_id

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._http.send(request)
        except httpx.TimeoutException:
            raise GatewayUnavailableError(self.base_url, f"no answer within {self._timeout:g} s") from None
        except httpx.TransportError as exc:
            raise GatewayUnavailableError(self.base_url, str(exc) or type(exc).__name__) from None
        if not response.is_success:
            raise _error_from(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(response.status_code, "malformed_response", "the answer is not a JSON object")
        return data

    def _check_subject(self, consent: Consent) -> None:
        if to_checksum_address(consent.subject) != self.account.address:
            raise ConfigurationError(
                f"the consent's subject is {consent.subject} but the signing key is {self.account.address}"
            )


@dataclass(frozen=True)
class AccessAsk:
    """One access to ask for in a batch: a record, a purpose, the consents to present."""

    record: str | bytes
    purpose: int
    consents: tuple[Consent, ...] = ()
    pseudonymise: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the item as `POST /v1/access/batch` takes it."""
        return {
            "record": record_hex(parse_record_id(self.record)),
            "purpose": self.purpose,
            "consents": [consent.to_json() for consent in self.consents],
            "withhold": "pseudonymise" if self.pseudonymise else "remove",
        }


def _without_consents(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "consents"}


def parse_address(text: str, what: str = "address") -> Address:
    """Return `text` as a checksummed address; raise ConfigurationError naming `what` if it is not one."""
    if not isinstance(text, str) or not is_address(text):
        raise ConfigurationError(f"{what} must be a 0x-prefixed 20-byte address, got {text!r}")
    return Address(to_checksum_address(text))


def parse_record_id(value: str | bytes) -> RecordId:
    """Return a record id from 32 bytes or 64 hex digits (0x optional); raise ConfigurationError otherwise."""
    if isinstance(value, bytes):
        raw = value
    else:
        try:
            raw = bytes.fromhex(value.strip().removeprefix("0x"))
        except ValueError:
            raw = b""
    if len(raw) != 32:
        raise ConfigurationError(f"a record id is 32 bytes (64 hex digits), got {value!r}")
    return RecordId(raw)


def record_hex(record_id: RecordId) -> str:
    """Return a record id as 0x-prefixed lower-case hex, as the API spells it."""
    return "0x" + record_id.hex()


def _hex(value: bytes | str) -> str:
    return value if isinstance(value, str) else "0x" + value.hex()


def _error_from(response: httpx.Response) -> GatewayError:
    """Return the GatewayError for a non-2xx answer, from its `{error, detail}` body when it has one."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and ("error" in data or "detail" in data):
        detail = data.get("detail", "")
        return GatewayError(
            response.status_code,
            str(data.get("error") or "http_error"),
            detail if isinstance(detail, str) else json.dumps(detail),
            data["rule"] if isinstance(data.get("rule"), str) else None,
        )
    text = " ".join(response.text.split())[:200] or response.reason_phrase
    return GatewayError(response.status_code, "http_error", text)
