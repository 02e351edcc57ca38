"""Staff and applications sign with their own keys; the chain names the acting client as a pseudonym.

A private chain with a custodian (health) and a requester (transport) whose gateways refuse their
organisation keys as callers (the production default); clients are registered with the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from consentledger import governance
from consentledger.actors import actor_id
from consentledger.chain.history import check_record_chain
from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.client import GatewayClient
from consentledger.consent import Consent
from consentledger.crypto.keys import load_account
from consentledger.errors import GatewayError
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency
from consentledger.types import Role

from .world import CONTACT_TRACE, DISTRICT_STATS, HEALTH, TRANSPORT, Consortium, start_consortium

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
CLIENT_PASSWORD = "a clerk's own passphrase"


@dataclass
class Staffed:
    """The consortium, its chain, and one client key per role created with `agency client add`."""

    consortium: Consortium
    chain: LocalNode
    clerk: LocalAccount
    analyst: LocalAccount
    liaison: LocalAccount
    auditor: LocalAccount
    root: Path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `consentledger` command as an administrator would."""
    environment = {**os.environ, PASSWORD_ENV: DEV_PASSWORD, "CONSENTLEDGER_CLIENT_PASSWORD": CLIENT_PASSWORD,
                   **(env or {})}
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=120)


def add_client(agency: Agency, root: Path, name: str, role: str) -> LocalAccount:
    """Register a new client of `agency` with the CLI (`--new-keystore`) and return its key."""
    keystore = root / f"{name.split()[0].lower()}-{agency.name}.json"
    done = cli("agency", "client", "add", "--config", str(agency.created.config), "--name", name, "--role", role,
               "--new-keystore", str(keystore))
    assert done.returncode == 0, done.stdout + done.stderr
    return load_account(keystore, CLIENT_PASSWORD)


@pytest.fixture(scope="module")
def staffed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staffed]:
    """Health and transport on a private anvil, org keys refused as callers, a clerk, an analyst, a liaison."""
    root = tmp_path_factory.mktemp("staffed")
    chain = start_node(ChainKind.ANVIL)
    try:
        members = {"health": (HEALTH, Role.CUSTODIAN), "transport": (TRANSPORT, Role.REQUESTER)}
        consortium = start_consortium(chain.rpc_url, root, members, settings={"allow_org_key_requests": False})
        try:
            clerk = add_client(consortium.health, root, "Ana Lima (clerk)", "collect")
            analyst = add_client(consortium.transport, root, "Tom Berg (analyst)", "request")
            liaison = add_client(consortium.transport, root, "Eva Roth (compliance)", "audit-liaison")
            auditor = Account.create()
            consortium.govern(governance.admit_member(auditor.address, Role.AUDITOR, "audit office"))
            yield Staffed(consortium, chain, clerk, analyst, liaison, auditor, root)
        finally:
            consortium.stop()
    finally:
        chain.stop()


def collect(staffed: Staffed, payload: dict[str, object], category: int = DISTRICT_STATS) -> str:
    """Collect `payload` at health with the clerk's key; return the record id."""
    with GatewayClient(staffed.consortium.health.url, staffed.clerk) as clerk:
        answer = clerk.put_record(Account.create().address, category, payload)
    assert answer["state"] == "registered", answer
    return str(answer["record"])


def refused(call: object) -> GatewayError:
    """Return the GatewayError `call()` raises (it must raise one)."""
    with pytest.raises(GatewayError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_a_clerk_collects_with_her_own_key_and_the_org_key_is_refused(staffed: Staffed) -> None:
    """`record put --keystore clerk.json` works; the organisation's signer key gets 403 naming the client keys."""
    payload = staffed.root / "stats.json"
    payload.write_text(json.dumps({"district": "North", "cases": 3}))
    keystore = staffed.root / "ana-health.json"
    done = cli("record", "put", "--gateway", staffed.consortium.health.url, "--subject", Account.create().address,
               "--category", str(DISTRICT_STATS), "--payload-file", str(payload), "--keystore", str(keystore),
               "--password-env", "CONSENTLEDGER_CLIENT_PASSWORD")
    assert done.returncode == 0, done.stdout + done.stderr

    org = Account.from_key(staffed.consortium.key(staffed.consortium.health))
    with GatewayClient(staffed.consortium.health.url, org) as as_org:
        error = refused(lambda: as_org.put_record(Account.create().address, DISTRICT_STATS, {"district": "East"}))
    assert error.status == 403 and "client key" in error.detail


def test_a_requester_client_access_carries_its_actor_in_the_hash_chain(staffed: Staffed) -> None:
    """The analyst's access is on chain with actor keccak(analyst, salt); the head recomputes with it."""
    record = collect(staffed, {"district": "South", "cases": 7})
    with GatewayClient(staffed.consortium.transport.url, staffed.analyst) as analyst:
        answer = analyst.request_access(record, 1)
    with GatewayClient(staffed.consortium.transport.url, staffed.liaison) as liaison:
        listed = {c["address"]: c for c in liaison.clients()["clients"]}

    actor = listed[staffed.analyst.address]["actor"]
    assert answer["payload"] == {"district": "South", "cases": 7} and answer["actor"] == actor
    (entry,) = staffed.consortium.accesses(record)
    assert "0x" + entry.actor.hex() == actor and entry.requester == staffed.consortium.transport.address
    assert check_record_chain(staffed.consortium.ledger, bytes.fromhex(record[2:])).ok


def test_a_revoked_client_is_refused_from_the_next_request(staffed: Staffed) -> None:
    """`agency client revoke` takes effect at once on the running gateway."""
    temp = add_client(staffed.consortium.health, staffed.root, "Temp Worker (clerk)", "collect")
    with GatewayClient(staffed.consortium.health.url, temp) as client:
        assert client.put_record(Account.create().address, DISTRICT_STATS, {"district": "West"})["record"]
        done = cli("agency", "client", "revoke", "--config", str(staffed.consortium.health.created.config),
                   "--address", temp.address)
        assert done.returncode == 0, done.stderr
        error = refused(lambda: client.put_record(Account.create().address, DISTRICT_STATS, {"district": "West"}))
    assert error.status == 403 and "revoked" in error.detail


def test_a_client_acts_only_in_its_own_role_and_at_its_own_agency(staffed: Staffed) -> None:
    """A collecting clerk cannot request; the analyst is unknown at health; a stranger's key is unknown."""
    record = collect(staffed, {"district": "East", "cases": 1})
    with GatewayClient(staffed.consortium.transport.url, staffed.liaison) as liaison:
        assert refused(lambda: liaison.request_access(record, 1)).status == 403
    with GatewayClient(staffed.consortium.health.url, staffed.analyst) as elsewhere:
        error = refused(lambda: elsewhere.put_record(Account.create().address, DISTRICT_STATS, {"district": "East"}))
    assert error.status == 403 and "not a registered client" in error.detail
    with GatewayClient(staffed.consortium.transport.url, Account.create()) as stranger:
        assert refused(lambda: stranger.request_access(record, 1)).status == 403
    with GatewayClient(staffed.consortium.transport.url, staffed.analyst) as analyst:
        assert refused(analyst.clients).status == 403


def test_adding_a_key_twice_is_a_clear_conflict(staffed: Staffed) -> None:
    """The same key cannot be registered again (exit 12, one line)."""
    done = cli("agency", "client", "add", "--config", str(staffed.consortium.health.created.config),
               "--name", "again", "--role", "collect", "--address", staffed.clerk.address)
    assert done.returncode == 12 and "registered client already" in done.stderr
    bad_role = cli("agency", "client", "add", "--config", str(staffed.consortium.health.created.config),
                   "--name", "x", "--role", "superuser", "--address", Account.create().address)
    assert bad_role.returncode == 13 and "collect, request, audit-liaison" in bad_role.stderr


def test_an_auditor_learns_who_acted_from_a_statement_it_can_check(staffed: Staffed) -> None:
    """`audit actor` fetches the transport bureau's signed statement and checks it; a forged one fails (exit 9)."""
    record = collect(staffed, {"district": "North", "cases": 9})
    with GatewayClient(staffed.consortium.transport.url, staffed.analyst) as analyst:
        actor = analyst.request_access(record, 1)["actor"]
    with GatewayClient(staffed.consortium.transport.url, staffed.auditor) as auditor:
        answer = auditor.who_is(actor)
    assert answer["statement"]["client"] == staffed.analyst.address
    assert answer["statement"]["name"] == "Tom Berg (analyst)"
    assert "0x" + actor_id(staffed.analyst.address, bytes.fromhex(answer["statement"]["salt"][2:])).hex() == actor

    saved = staffed.root / "statement.json"
    saved.write_text(json.dumps(answer))
    manifest = str(staffed.root / "deployment.json")
    checked = cli("audit", "check-actor", str(saved), "--rpc", staffed.chain.rpc_url, "--manifest", manifest)
    assert checked.returncode == 0 and "Tom Berg (analyst)" in checked.stdout, checked.stderr

    forged = {**answer, "statement": {**answer["statement"], "name": "someone else"}}
    saved.write_text(json.dumps(forged))
    rejected = cli("audit", "check-actor", str(saved), "--rpc", staffed.chain.rpc_url, "--manifest", manifest)
    assert rejected.returncode == 9 and "not by the organisation" in rejected.stderr
    swapped = {**answer, "statement": {**answer["statement"], "client": staffed.clerk.address}}
    saved.write_text(json.dumps(swapped))
    mismatch = cli("audit", "check-actor", str(saved), "--rpc", staffed.chain.rpc_url, "--manifest", manifest)
    assert mismatch.returncode == 9 and "do not hash to the actor" in mismatch.stderr


def test_only_auditors_and_the_liaison_learn_who_an_actor_is(staffed: Staffed) -> None:
    """The analyst itself, a stranger and an unknown actor get refusals, never a statement."""
    with GatewayClient(staffed.consortium.transport.url, staffed.liaison) as liaison:
        actor = {c["address"]: c for c in liaison.clients()["clients"]}[staffed.analyst.address]["actor"]
        assert liaison.who_is(actor)["statement"]["client"] == staffed.analyst.address
    for who in (staffed.analyst, Account.create()):
        with GatewayClient(staffed.consortium.transport.url, who) as caller:
            assert refused(lambda c=caller: c.who_is(actor)).status == 403  # type: ignore[misc]
    with GatewayClient(staffed.consortium.transport.url, staffed.auditor) as auditor:
        assert refused(lambda: auditor.who_is("0x" + "ab" * 32)).status == 404
        assert refused(lambda: auditor.who_is("0x1234")).status == 422


def test_the_audit_trace_and_the_subjects_history_show_the_actor(staffed: Staffed) -> None:
    """The auditor's access listing and the data subject's own history name the acting client's pseudonym."""
    subject = Account.create()
    with GatewayClient(staffed.consortium.health.url, staffed.clerk) as clerk:
        record = clerk.put_record(subject.address, CONTACT_TRACE, {"name": "Lee", "phone": "1", "district": "N"})
    record_id = str(record["record"])
    with GatewayClient(staffed.consortium.transport.url, subject) as as_subject:
        terms = Consent.new(subject=subject.address, grantee=staffed.consortium.transport.address,
                            category=CONTACT_TRACE, purpose=1, valid_until=int(time.time()) + 3600)
        as_subject.sign_and_grant(terms)
    with GatewayClient(staffed.consortium.transport.url, staffed.analyst) as analyst:
        actor = analyst.request_access(record_id, 1, [terms])["actor"]

    with GatewayClient(staffed.consortium.health.url, staffed.auditor) as auditor:
        items = auditor.audit_accesses(record=record_id)["items"]
    assert [i["actor"] for i in items] == [actor]
    with GatewayClient(staffed.consortium.health.url, subject) as as_subject:
        history = as_subject.my_history()
    assert [i["actor"] for i in history["items"]] == [actor]
