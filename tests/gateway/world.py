"""A consortium of real `consentledger gateway serve` processes, and signed (or forged) HTTP requests to them.

`start_consortium` deploys a ledger, sets up the catalog every gateway test uses, admits the agencies
and starts their gateways; tests reach the gateways only over HTTP, through `signed`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from consentledger import governance
from consentledger.attestation import RecordAttestation, sign_attestation
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger, entry_from_event
from consentledger.chain.sender import TransactionSender
from consentledger.consent import Consent, sign_consent
from consentledger.localnet import Agency, admit, create_agency
from consentledger.signing import SIGNED_HEADERS, sign_request
from consentledger.store import Store, make_engine
from consentledger.store.tables import outbox, records
from consentledger.types import AccessEntry, Role, Sensitivity

ADMIN = 0
"""Dev account of the consortium's only admin (threshold 1); other test modules use it only sequentially."""
HEALTH, TRANSPORT, POLICE = 7, 8, 9
"""Dev accounts of the agencies: used by no other test, so no two processes ever share a signer."""
CHAIN_ID = 1337

EPIDEMIC_CONTROL = 1
CONTACT_TRACE, LAB_RESULT, DISTRICT_STATS = 1, 2, 3
CONTACT_FIELDS = ("name", "phone", "district")
AGGREGATE_K = 2
"""District statistics may be anonymous aggregates over at least 2 distinct subjects."""


def catalog() -> list[governance.ProposedAction]:
    """Return the governance actions setting up the purposes and categories every consortium here uses."""
    month = 86400 * 30
    return [
        governance.add_purpose(EPIDEMIC_CONTROL, "epidemic-control"),
        governance.add_category(CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME, month, CONTACT_FIELDS,
                                ("name", "phone"), [EPIDEMIC_CONTROL]),
        governance.add_category(LAB_RESULT, "lab-result", Sensitivity.PROTECTED, month, ("test", "result"),
                                (), [EPIDEMIC_CONTROL]),
        governance.add_category(DISTRICT_STATS, "district-stats", Sensitivity.OPEN, month, ("district", "cases"),
                                (), [EPIDEMIC_CONTROL], min_aggregate_subjects=AGGREGATE_K),
    ]


def body_bytes(body: Mapping[str, Any] | bytes | None) -> bytes:
    """Return a request body as the bytes to sign: JSON objects compactly encoded, bytes as they are."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":")).encode()


def signed(
    agency: Agency,
    key: bytes,
    method: str,
    path: str,
    body: Mapping[str, Any] | bytes | None = None,
    *,
    timestamp: int | None = None,
    audience: str | None = None,
    sent_body: bytes | None = None,
    reuse: httpx.Response | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> httpx.Response:
    """Send a request to `agency`'s gateway signed by `key`; the keywords forge it.

    `timestamp` and `audience` change what is signed; `sent_body` sends other bytes than the signed
    ones (tampering); `reuse` sends exactly the body and signature headers of an earlier response's
    request (a replay); `headers` are added last and may overwrite the signature headers.
    """
    if reuse is not None:
        raw = reuse.request.content
        signature = {name: reuse.request.headers[name] for name in SIGNED_HEADERS}
    else:
        raw = body_bytes(body)
        signature = sign_request(
            key, chain_id=CHAIN_ID, audience=audience or agency.address, method=method, path=path, body=raw,
            now=int(time.time()) if timestamp is None else timestamp,
        ).headers()
    all_headers = {**signature, "Content-Type": "application/json", **(headers or {})}
    content = raw if sent_body is None else sent_body
    return httpx.request(method, agency.url + path, content=content, headers=all_headers, trust_env=False,
                         timeout=timeout)


def expect(response: httpx.Response, status: int, error: str | None = None, rule: str | None = None) -> dict[str, Any]:
    """Assert the response's status (and JSON error code and contract rule); return its JSON body."""
    assert response.status_code == status, f"{response.status_code} {response.text[:500]}"
    answer: dict[str, Any] = response.json()
    if error is not None:
        assert answer["error"] == error, answer
    if rule is not None:
        assert answer.get("rule") == rule, answer
    return answer


@dataclass
class Consortium:
    """A deployed ledger, its admin, and the agencies whose gateways run as real processes."""

    ledger: Ledger
    admin: TransactionSender
    agencies: dict[str, Agency]
    keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def health(self) -> Agency:
        """The custodian agency."""
        return self.agencies["health"]

    @property
    def transport(self) -> Agency:
        """A requester agency."""
        return self.agencies["transport"]

    @property
    def police(self) -> Agency:
        """Another requester agency."""
        return self.agencies["police"]

    def key(self, agency: Agency) -> bytes:
        """Return the private key `agency` signs with."""
        return self.keys[agency.address]

    def govern(self, proposed: governance.ProposedAction) -> None:
        """Propose and (threshold 1) execute a governance action as the admin."""
        _, executed = self.ledger.propose(self.admin, proposed)
        assert executed, proposed.describe()

    def store(self, agency: Agency) -> Store:
        """Return a Store over `agency`'s SQLite database (the one its gateway process writes)."""
        return Store(make_engine(f"sqlite:///{agency.directory / 'agency.db'}"))

    def rows(self, agency: Agency) -> tuple[int, int]:
        """Return how many records and outbox rows `agency`'s database holds."""
        with self.store(agency).engine.connect() as conn:
            return (conn.scalar(select(func.count()).select_from(records)) or 0,
                    conn.scalar(select(func.count()).select_from(outbox)) or 0)

    def ingest(self, payload: Mapping[str, Any], *, category: int, subject: str | None = None) -> str:
        """Collect `payload` at the health gateway; return the registered record's 0x id."""
        body = {"subject": subject or Account.create().address, "category": category, "payload": dict(payload)}
        answer = expect(signed(self.health, self.key(self.health), "POST", "/v1/records", body), 201)
        assert answer["state"] == "registered", answer
        return str(answer["record"])

    def grant(self, subject: LocalAccount, grantee: Agency, category: int, **terms: Any) -> Consent:
        """Have `subject` sign a consent for `grantee` and relay it through the grantee's gateway."""
        terms.setdefault("valid_until", int(time.time()) + 3600)
        consent = Consent.new(subject=subject.address, grantee=grantee.address, category=category,
                              purpose=EPIDEMIC_CONTROL, **terms)
        signature = sign_consent(consent, subject.key, self.ledger.domain())
        body = {"consent": consent.to_json(), "signature": "0x" + signature.hex()}
        expect(signed(grantee, subject.key, "POST", "/v1/consents", body), 201)
        return consent

    def attest(self, subject: LocalAccount, record: str) -> dict[str, Any]:
        """Have `subject` sign their record's attestation and relay it through health's gateway; return the answer."""
        info = self.ledger.record(bytes.fromhex(record[2:]))
        signature = sign_attestation(RecordAttestation.of(info), subject.key, self.ledger.domain())
        body = {"signature": "0x" + signature.hex()}
        return expect(signed(self.health, subject.key, "POST", f"/v1/records/{record}/attestation", body), 200)

    def access(
        self, requester: Agency, record: str, consents: Sequence[Consent] = (), **options: Any
    ) -> httpx.Response:
        """Ask `requester`'s own gateway for `record` for epidemic control under `consents`."""
        body = {"record": record, "purpose": EPIDEMIC_CONTROL, "consents": [c.to_json() for c in consents]}
        return signed(requester, self.key(requester), "POST", "/v1/access", body, **options)

    def accesses(self, record: str) -> list[AccessEntry]:
        """Return the AccessRecorded entries of `record` on chain, oldest first."""
        logs = self.ledger.access.events.AccessRecorded().get_logs(
            from_block=self.ledger.deployment.deploy_block, argument_filters={"record": bytes.fromhex(record[2:])}
        )
        return sorted((entry_from_event(log) for log in logs), key=lambda e: e.seq)

    def stop(self) -> None:
        """Stop every gateway process and free their ports."""
        for agency in self.agencies.values():
            agency.stop()
            agency.release()


def start_consortium(
    rpc_url: str, root: Path, members: Mapping[str, tuple[int, Role]], *,
    settings: Mapping[str, float | bool] | None = None, gateway_rpc: str | None = None,
) -> Consortium:
    """Deploy a ledger on `rpc_url` (admin: dev account 0), set up the catalog, admit and start `members`.

    `members` maps an agency name to its dev account index and roles; the gateways start in parallel
    and use `gateway_rpc` (default: `rpc_url`, which the test's own ledger uses).
    `settings` (numbers and flags, e.g. `sweep_interval`) are added to every agency.toml, so a restart
    keeps them. These gateways accept their org keys as callers (`allow_org_key_requests`) unless the
    settings say otherwise, so tests about other rules need no client set-up; `test_clients` covers clients.
    """
    settings = {"allow_org_key_requests": True, **(settings or {})}
    w3 = connect(rpc_url)
    admin = dev_account(ADMIN)
    ledger = deploy(w3, admin, [admin.address], 1)
    manifest = root / "deployment.json"
    ledger.deployment.save(manifest)
    consortium = Consortium(ledger, ledger.sender(admin), {})
    for action in catalog():
        consortium.govern(action)
    for name, (index, roles) in members.items():
        agency = create_agency(root, name, dev_index=index, rpc_url=gateway_rpc or rpc_url, manifest=manifest)
        with agency.created.config.open("a") as config:
            config.writelines(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
        admit(ledger, consortium.admin, [], agency, roles)
        consortium.agencies[name] = agency
        consortium.keys[agency.address] = bytes(dev_account(index).key)
    try:
        with ThreadPoolExecutor(len(members)) as pool:
            list(pool.map(lambda agency: agency.start(), consortium.agencies.values()))
    except BaseException:
        consortium.stop()
        raise
    return consortium
