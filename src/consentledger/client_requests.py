"""Consent requests through a GatewayClient: a requester asks and polls, a data subject lists, narrows and answers.

Requests live at the requester's gateway (which relays the consents naming its organisation): the
requester's client files there, and the subject signs their list, grant and denial to that gateway.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from eth_utils import to_checksum_address

from consentledger.client import GatewayClient, parse_address, parse_record_id, record_hex
from consentledger.consent import NO_RECORD, Consent, sign_consent
from consentledger.errors import ConfigurationError, PayloadValidationError
from consentledger.narrowing import GrantTerms, narrowing_refusal, wider_terms

REQUESTS_PATH = "/v1/consent-requests"
MINE_PATH = "/v1/subjects/me/consent-requests"


def file_request(
    client: GatewayClient, subject: str, category: int, purpose: int, valid_until: int, reason: str, *,
    max_uses: int = 1, identified: bool = False, record: str | bytes | None = None, expires_in: int | None = None,
    callback_url: str | None = None,
) -> dict[str, Any]:
    """Return the filed request `{id, state: "requested", ...}`: this agency asks `subject` for that consent."""
    body: dict[str, Any] = {
        "subject": parse_address(subject, "subject"), "category": category, "purpose": purpose,
        "valid_until": valid_until, "max_uses": max_uses, "identified": identified, "reason": reason,
    }
    if record is not None:
        body["record"] = record_hex(parse_record_id(record))
    if expires_in is not None:
        body["expires_in"] = expires_in
    if callback_url is not None:
        body["callback_url"] = callback_url
    return client.call("POST", REQUESTS_PATH, body)


def get_request(client: GatewayClient, request_id: str) -> dict[str, Any]:
    """Return one request in its state now (the caller is its subject or a requester client of the agency)."""
    return client.call("GET", f"{REQUESTS_PATH}/{_id(request_id)}")


def agency_requests(client: GatewayClient, state: str | None = None) -> dict[str, Any]:
    """Return `{requests}` the agency filed, newest first, optionally only those in `state` now."""
    return client.call("GET", REQUESTS_PATH + _query(state))


def my_requests(client: GatewayClient, state: str | None = None) -> dict[str, Any]:
    """Return `{requests}` to this client's account (a data subject), newest first; `state="requested"`: pending."""
    return client.call("GET", MINE_PATH + _query(state))


def narrowed_consent(
    request: dict[str, Any], *, valid_until: int | None = None, max_uses: int | None = None,
    identified: bool | None = None, record: str | bytes | None = None, nonce: int | None = None,
) -> Consent:
    """Return the consent `request` (as the gateway shows it) describes, with the narrowing applied.

    Only narrowing is accepted: PayloadValidationError naming a term wider than asked, before anything is signed.
    """
    asked = GrantTerms(int(request["valid_until"]), int(request["max_uses"]), bool(request["identified"]),
                       request["record"])
    granted = GrantTerms(
        valid_until=asked.valid_until if valid_until is None else valid_until,
        max_uses=asked.max_uses if max_uses is None else max_uses,
        identified=asked.identified if identified is None else identified,
        record=asked.record if record is None else record_hex(parse_record_id(record)),
    )
    wider = wider_terms(asked, granted)
    if wider:
        raise PayloadValidationError(narrowing_refusal(wider))
    terms: dict[str, Any] = {
        "subject": to_checksum_address(request["subject"]), "grantee": to_checksum_address(request["requester"]),
        "category": int(request["category"]), "purpose": int(request["purpose"]),
        "valid_until": granted.valid_until, "max_uses": granted.max_uses, "identified": granted.identified,
        "record": bytes.fromhex(granted.record[2:]) if granted.record else NO_RECORD,
    }
    return Consent.new(**terms) if nonce is None else Consent(**terms, nonce=nonce)


def grant_request(
    client: GatewayClient, request_id: str, *, valid_until: int | None = None, max_uses: int | None = None,
    identified: bool | None = None, record: str | bytes | None = None,
) -> dict[str, Any]:
    """Return the request, granted: sign the (narrowed) consent with this client's account and send it.

    ConfigurationError if this account is not the request's subject; PayloadValidationError, before
    anything is signed, if the catalog no longer lets the consent be used (`GatewayClient.check_terms`).
    """
    request = get_request(client, request_id)
    if to_checksum_address(request["subject"]) != client.account.address:
        raise ConfigurationError(f"request {request_id} asks {request['subject']}, not the signing key "
                                 f"{client.account.address}")
    consent = narrowed_consent(request, valid_until=valid_until, max_uses=max_uses, identified=identified,
                               record=record)
    client.check_terms(consent)  # a purpose sunset since the request was filed: refused before signing
    signature = sign_consent(consent, client.account.key, client.domain())
    body: dict[str, Any] = {"nonce": str(consent.nonce), "signature": "0x" + signature.hex()}
    for name, value in (("valid_until", valid_until), ("max_uses", max_uses), ("identified", identified)):
        if value is not None:
            body[name] = value
    if record is not None:
        body["record"] = record_hex(parse_record_id(record))
    return client.call("POST", f"{MINE_PATH}/{_id(request_id)}/grant", body)


def deny_request(client: GatewayClient, request_id: str) -> dict[str, Any]:
    """Return the request, denied by this client's account (its subject)."""
    return client.call("POST", f"{MINE_PATH}/{_id(request_id)}/deny", {})


def seconds_from_now(seconds: int) -> int:
    """Return the unix time `seconds` from now (a request's `valid_until`)."""
    return int(time.time()) + seconds


def _id(request_id: str) -> str:
    text = request_id.strip().lower()
    if len(text) != 34 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
        raise ConfigurationError(f"bad consent request id {request_id!r}: 0x and 32 hex digits")
    return text


def _query(state: str | None) -> str:
    return "" if state is None else "?" + urllib.parse.urlencode({"state": state})
