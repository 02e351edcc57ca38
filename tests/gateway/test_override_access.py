"""Emergency overrides over real HTTP: the emergency client role, the EMERGENCY member role, the justification kept
salted by the requester and read back by an auditor, and the CLI flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from consentledger import governance
from consentledger.actors import ClientRole, actor_id
from consentledger.crypto.keys import load_account, new_keystore
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency
from consentledger.store.clients import Clients
from consentledger.types import LegalBasis, ReviewStatus, Role

from .conftest import Audited, fund
from .test_portal_api import overview, sign_in
from .world import CONTACT_TRACE, EPIDEMIC_CONTROL, Consortium, expect, signed

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
CLIENT_PASSWORD = "a paramedic's own passphrase"
REVIEW_PERIOD = 7 * 86400
CONTACT = {"name": "Ola", "phone": "555-0123", "district": "East"}
WHY = "Unconscious patient at the flood shelter; contacts needed to trace a cholera case now."


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `consentledger` command."""
    environment = {**os.environ, PASSWORD_ENV: DEV_PASSWORD, "CONSENTLEDGER_CLIENT_PASSWORD": CLIENT_PASSWORD}
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=120)


@dataclass(frozen=True)
class Emergency:
    """Police holding EMERGENCY on chain, a client of police with request + emergency (added by the CLI, with its
    keystore), and one with request only."""

    medic: LocalAccount
    medic_keystore: Path
    clerk: LocalAccount


@pytest.fixture(scope="module")
def emergency(consortium: Consortium, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emergency]:
    """Overrides allowed for epidemic control (reviewed within a week); police given EMERGENCY for this module."""
    police = consortium.police
    consortium.govern(governance.set_override_policy([EPIDEMIC_CONTROL], REVIEW_PERIOD))
    consortium.govern(governance.set_roles(police.address, Role.REQUESTER | Role.EMERGENCY))
    keystore = tmp_path_factory.mktemp("emergency") / "medic.json"
    added = cli("agency", "client", "add", "--config", str(police.created.config), "--name", "Rui Sá (paramedic)",
                "--role", "request", "--role", "emergency", "--new-keystore", str(keystore))
    assert added.returncode == 0, added.stdout + added.stderr
    assert "request,emergency" in added.stdout
    clerk = Account.create()
    Clients(consortium.store(police).engine).add(clerk.address, "Lia Paz (clerk)", ClientRole.REQUEST)
    try:
        yield Emergency(load_account(keystore, CLIENT_PASSWORD), keystore, clerk)
    finally:
        consortium.govern(governance.set_roles(police.address, Role.REQUESTER))


def override(agency: Agency, key: bytes, record: str, justification: str = WHY) -> Any:
    """Ask `agency`'s gateway, signed with `key`, for `record` by emergency override."""
    body = {"record": record, "purpose": EPIDEMIC_CONTROL, "override": {"justification": justification}}
    return signed(agency, key, "POST", "/v1/access", body)


def fresh_record(consortium: Consortium) -> str:
    """Return a new contact trace of a new subject at health."""
    return consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=Account.create().address)


def test_an_override_by_a_client_without_the_emergency_role_is_refused(
    consortium: Consortium, emergency: Emergency
) -> None:
    """A request-only client asking for an override: 403 forbidden naming the role; nothing on chain."""
    record = fresh_record(consortium)

    refused = expect(override(consortium.police, emergency.clerk.key, record), 403, "forbidden")

    assert "emergency role" in refused["detail"], refused
    assert consortium.accesses(record) == []


def test_an_override_by_an_agency_without_the_emergency_member_role_is_refused_on_chain(
    consortium: Consortium, emergency: Emergency
) -> None:
    """Transport holds REQUESTER only: the chain refuses its override (ConsortiumMissingRole); nothing is kept."""
    record = fresh_record(consortium)

    expect(override(consortium.transport, consortium.key(consortium.transport), record), 403, "rule_violated",
           "ConsortiumMissingRole")

    assert consortium.accesses(record) == []
    with consortium.store(consortium.transport).engine.connect() as conn:
        kept = conn.exec_driver_sql("SELECT count(*) FROM override_justifications WHERE record = ?", (record,))
        assert kept.scalar() == 0


def test_an_override_releases_the_record_and_its_justification_is_readable_by_an_auditor(
    consortium: Consortium, emergency: Emergency, audited: Audited
) -> None:
    """The medic's override: the record identified, the entry flagged and pending review; the auditor reads the
    justification at police's gateway, and keccak256(salt ‖ text) is the hash OverrideRecorded carries."""
    record = fresh_record(consortium)

    answer = expect(override(consortium.police, emergency.medic.key, record), 200)

    assert (answer["payload"], answer["basis"], answer["identified"]) == (CONTACT, "override", True)
    (entry,) = consortium.accesses(record)
    assert (entry.basis, "0x" + entry.consent.hex()) == (LegalBasis.OVERRIDE, answer["override"]["justification_hash"])
    state = consortium.ledger.override_state(bytes.fromhex(record[2:]), entry.seq)
    assert (state.status, state.review_due) == (ReviewStatus.PENDING, answer["override"]["review_due"])
    assert state.review_due == entry.timestamp + REVIEW_PERIOD
    (recorded,) = consortium.ledger.access.events.OverrideRecorded().get_logs(
        from_block=entry.block_number, to_block=entry.block_number)

    path = f"/v1/audit/overrides/{record}/{entry.seq}"
    kept = expect(signed(consortium.police, audited.auditor.key, "GET", path), 200)

    assert (kept["record"], kept["seq"], kept["justification"]) == (record, entry.seq, WHY)
    salt = bytes.fromhex(kept["salt"][2:])
    assert len(salt) == 32 and kept["hash"] == "0x" + keccak(salt + WHY.encode()).hex()
    assert kept["hash"] == "0x" + bytes(recorded["args"]["justification"]).hex() != "0x" + keccak(text=WHY).hex()
    clients = Clients(consortium.store(consortium.police).engine)
    medic = clients.get(emergency.medic.address)
    assert medic is not None and medic.holds(ClientRole.EMERGENCY)
    assert kept["actor"] == "0x" + actor_id(medic.address, medic.salt).hex() == answer["actor"]
    assert kept["recorded_at"] == entry.timestamp


def test_a_justification_is_not_readable_by_a_member_that_is_no_auditor(
    consortium: Consortium, emergency: Emergency
) -> None:
    """Transport (a requester) and health (the custodian) asking for the justification: 403 forbidden."""
    record = fresh_record(consortium)
    seq = expect(override(consortium.police, emergency.medic.key, record), 200)["seq"]
    path = f"/v1/audit/overrides/{record}/{seq}"

    for member in (consortium.transport, consortium.health):
        expect(signed(consortium.police, consortium.key(member), "GET", path), 403, "forbidden")


def test_an_access_that_is_no_override_has_no_justification(consortium: Consortium, audited: Audited) -> None:
    """An auditor asking for the justification of a consent access: 404 naming its basis."""
    path = f"/v1/audit/overrides/{audited.contact}/1"

    refused = expect(signed(consortium.police, audited.auditor.key, "GET", path), 404, "not_found")

    assert "no emergency override" in refused["detail"], refused


def test_the_cli_asks_for_an_override_with_a_justification_file(
    consortium: Consortium, emergency: Emergency, tmp_path: Path
) -> None:
    """`access request --override-justification-file` through the real CLI writes the payload; the flag with
    --consent-file is one readable line and the configuration exit code."""
    record = fresh_record(consortium)
    why = tmp_path / "why.txt"
    why.write_text(WHY + "\n", encoding="utf-8")
    signer = ("--keystore", str(emergency.medic_keystore), "--password-env", "CONSENTLEDGER_CLIENT_PASSWORD")
    ask = ("access", "request", "--gateway", consortium.police.url, "--record", record, "--purpose",
           str(EPIDEMIC_CONTROL))

    done = cli(*ask, "--override-justification-file", str(why), *signer)

    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == CONTACT
    (entry,) = consortium.accesses(record)
    assert entry.basis is LegalBasis.OVERRIDE
    consent = tmp_path / "consent.json"
    consent.write_text("{}", encoding="utf-8")
    both = cli(*ask, "--override-justification", WHY, "--consent-file", str(consent), *signer)
    assert both.returncode == 2 and both.stdout == "", both.stdout + both.stderr
    (line,) = [text for text in both.stderr.splitlines() if text.strip()]
    assert "one legal basis" in line


def test_the_subjects_portal_says_the_override_was_without_consent_and_how_its_review_stands(
    consortium: Consortium, emergency: Emergency, audited: Audited
) -> None:
    """The subject reads the override as an emergency access without consent, its review pending until an auditor
    accepts it on chain, then accepted."""
    subject = Account.create()
    record = consortium.ingest(CONTACT, category=CONTACT_TRACE, subject=subject.address)
    seq = expect(override(consortium.police, emergency.medic.key, record), 200)["seq"]

    with httpx.Client(base_url=consortium.health.url, trust_env=False, timeout=60) as browser:
        sign_in(browser, subject)
        [pending] = [r for r in overview(browser)["records"] if r["id"] == record][0]["accesses"]
        fund(consortium, audited.auditor.address)
        ledger = consortium.ledger
        ledger.review_override(ledger.sender(audited.auditor), bytes.fromhex(record[2:]), seq, True,
                               "vital interest documented by the shelter's doctor")
        [accepted] = [r for r in overview(browser)["records"] if r["id"] == record][0]["accesses"]

    assert pending["sentence"].startswith("police looked at your Contact trace on "), pending
    assert "; accessed in an emergency without your consent (override; review: pending, due by " in \
        pending["sentence"], pending
    assert accepted["sentence"].endswith("(override; review: accepted by an auditor)."), accepted


def test_an_auditor_reads_and_checks_a_justification_with_the_cli(
    consortium: Consortium, emergency: Emergency, audited: Audited, tmp_path: Path
) -> None:
    """`consentledger audit justification` prints the text once it hashes to the chain's; a consent access is
    no override (exit 8, not found)."""
    record = fresh_record(consortium)
    expect(override(consortium.police, emergency.medic.key, record), 200)
    keystore = tmp_path / "auditor.json"
    new_keystore(keystore, DEV_PASSWORD, account=audited.auditor)
    manifest = tmp_path / "deployment.json"
    consortium.ledger.deployment.save(manifest)
    chain = ("--rpc", consortium.ledger.w3.provider.endpoint_uri, "--manifest", str(manifest))

    read = cli("audit", "justification", "--gateway", consortium.police.url, "--record", record, "--seq", "1",
               *chain, "--keystore", str(keystore))

    assert read.returncode == 0, read.stdout + read.stderr
    assert "matches the chain" in read.stdout and WHY[:40] in read.stdout.replace("\n", "")
    missing = cli("audit", "justification", "--gateway", consortium.police.url, "--record", audited.lab,
                  "--seq", "1", *chain, "--keystore", str(keystore))
    assert missing.returncode == 8 and "not an emergency override" in missing.stderr, missing.stderr
