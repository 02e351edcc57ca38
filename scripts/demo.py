#!/usr/bin/env python3
"""The sharing story end to end: a local chain, two agency gateways as real processes, one data subject.

Three ministries found a consortium (2-of-3). Governance approves a purpose and a catalog category
and admits a health bureau (custodian) and a transport bureau (requester), each with its own
gateway, and each agency registers its staff as clients with their own keys. A clerk of the health
bureau collects records through its gateway (a field off the positive list is refused); the data
subject signs a one-time consent; an analyst of the transport bureau asks its gateway, which records
the access on chain (naming the analyst as a pseudonymous actor), fetches the disclosure from the
health bureau's gateway and decrypts; a second access is refused; the audit index is built from the
chain, the audit trace printed and verified, and the auditor learns who the actor was.

With `--serve` everything keeps running after the story (until Ctrl-C) and `.demo/env` holds the
variables the README's copy-paste examples use (`source .demo/env`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

from consentledger import governance
from consentledger.actors import ClientRole
from consentledger.audit import Indexer, trace, verify
from consentledger.audit.actors import check_disclosure
from consentledger.audit.trace import TraceLine
from consentledger.chain.accounts import dev_account, dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.history import check_record_chain
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, free_port, start_node
from consentledger.chain.sender import TransactionSender
from consentledger.client import GatewayClient
from consentledger.consent import Consent
from consentledger.crypto.keys import load_account, new_keystore
from consentledger.errors import GatewayError
from consentledger.gateway.admin.clients import add_client
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency, admit, create_agency
from consentledger.settings import load_settings
from consentledger.store import make_engine
from consentledger.types import LegalBasis, Role, Sensitivity

console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 130)
EPIDEMIC_CONTROL, VITAL_INTEREST = 1, 2
CONTACT_TRACE = 1
LEGAL_TEXT = (
    "Epidemic Control Act, section 12: during a declared epidemic the transport bureau may use contact traces "
    "held by the health bureau to notify exposed travellers, until the declaration ends.\n"
)
LEGAL_URI = "https://laws.example/epidemic-control-act#s12"
OVERRIDE_REVIEW = 72 * 3600
"""Seconds within which the audit office must review an emergency override (the consortium's policy)."""
JUSTIFICATION = ("Exposed traveller unconscious on the night train; the contact trace is needed now to reach "
                 "the people who sat nearby, and consent cannot be asked in time.")
AUDITOR_DEV_ACCOUNT, HEALTH_DEV_ACCOUNT, TRANSPORT_DEV_ACCOUNT = 3, 5, 6
SUBJECT_PASSWORD = "the data subject's own passphrase"
SAMPLE_PAYLOADS = {
    "trace": {"name": "Kim", "phone": "555-0102", "district": "East", "visited_at": "2026-11-22"},
    "visit": {"district": "North", "visited_at": "2026-11-20"},
}
"""Payload files the README's examples can pass to `record put --payload-file` (`$SAMPLES/NAME.json`)."""
CLIENT_PASSWORD = DEV_PASSWORD
"""The demo's staff keystores open with the demo's password (`.demo/env` exports it), so examples need no other."""


def step(text: str) -> None:
    """Print a story step."""
    console.print(f"[bold cyan]▸[/] {text}")


def govern(ledger: Ledger, proposer: TransactionSender, approver: TransactionSender,
           proposed: governance.ProposedAction) -> None:
    """Propose with one admin, approve with another (2 of 3), and say what ran."""
    proposal_id, _ = ledger.propose(proposer, proposed)
    assert ledger.approve(approver, proposal_id), "a 2-of-3 proposal must run on its second approval"
    described = proposed.describe()
    described = described if len(described) <= 90 else described[:89] + "…"
    console.print(f"    proposal {proposal_id} approved 2 of 3 and executed: {described}")


def run_story(rpc_url: str, workdir: Path, *, serve: bool = False) -> int:
    """Run the story against a chain whose dev accounts 0-6 are funded; return an exit code.

    With `serve` the gateways keep running after the story until SIGINT or SIGTERM.
    """
    w3 = connect(rpc_url)
    ministry_a, ministry_b, ministry_c = dev_accounts(3)
    step("deploying Consortium + AccessLedger (2-of-3 admins)")
    ledger = deploy(w3, ministry_a, [ministry_a.address, ministry_b.address, ministry_c.address], 2,
                    admin_names=["ministry A", "ministry B", "ministry C"])
    manifest = workdir / "deployment.json"
    ledger.deployment.save(manifest)
    console.print(f"    Consortium {ledger.deployment.address_of('Consortium')}, "
                  f"AccessLedger {ledger.deployment.address_of('AccessLedger')} → {manifest}")
    a, b = ledger.sender(ministry_a), ledger.sender(ministry_b)

    step("governance: an emergency purpose, a vital-interest purpose and the positive list")
    govern(ledger, a, b, governance.add_purpose(EPIDEMIC_CONTROL, "epidemic-control"))
    govern(ledger, a, b, governance.add_purpose(VITAL_INTEREST, "vital-interest"))
    govern(ledger, a, b, governance.add_category(
        CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME, 30 * 86400,
        ["name", "phone", "district", "visited_at"], ["name", "phone"], [EPIDEMIC_CONTROL, VITAL_INTEREST]))

    step("two agencies get keys and configs (`consentledger agency init`); governance admits them and an auditor")
    health = create_agency(workdir, "health bureau", dev_index=HEALTH_DEV_ACCOUNT, rpc_url=rpc_url, manifest=manifest)
    transport = create_agency(workdir, "transport bureau", dev_index=TRANSPORT_DEV_ACCOUNT, rpc_url=rpc_url,
                              manifest=manifest)
    for agency, roles in ((health, Role.CUSTODIAN), (transport, Role.REQUESTER)):
        admit(ledger, a, [b], agency, roles)
        console.print(f"    admitted {agency.name} {agency.address} gateway {agency.url} "
                      f"x25519 {agency.created.x25519_public.hex()[:16]}…")
    auditor = dev_account(AUDITOR_DEV_ACCOUNT)
    govern(ledger, a, b, governance.admit_member(auditor.address, Role.AUDITOR, "audit office"))

    step("each agency registers its staff with their own keys (`consentledger agency client add`)")
    clerk = _add_client(workdir, health, "Ana Lima (clerk)", ClientRole.COLLECT)
    analyst = _add_client(workdir, transport, "Tom Berg (analyst)", ClientRole.REQUEST)
    officer = _add_client(workdir, transport, "Eva Moss (duty officer)", ClientRole.REQUEST, ClientRole.EMERGENCY)

    step("starting both gateways as real processes (`consentledger gateway serve`)")
    agencies: list[Agency] = [health, transport]
    try:
        for agency in agencies:
            agency.start()
        code, record, subject = _share(ledger, health, transport, clerk, analyst)
        if code == 0:
            code = _beyond_consent(ledger, (a, b), workdir, transport, analyst, officer, auditor, record)
        if code == 0:
            code = _audit(ledger, workdir, subject.address, transport, auditor)
        _write_env(workdir, rpc_url, manifest, health, transport, record, subject)
        if code == 0 and serve:
            _serve_until_stopped(workdir, agencies)
        return code
    finally:
        for agency in agencies:
            agency.stop()
        step("gateways stopped")


def _add_client(workdir: Path, agency: Agency, name: str, role: ClientRole, *extra: ClientRole) -> LocalAccount:
    """Register a member of `agency`'s staff with a new key of their own (and `extra` roles); return that key."""
    keystore = workdir / "clients" / f"{name.split()[0].lower()}.json"
    keystore.parent.mkdir(exist_ok=True)
    client = add_client(load_settings(agency.created.config), name, role, new_key=keystore, password=CLIENT_PASSWORD,
                        extra=extra)
    console.print(f"    {agency.name}: {name} ({client.role_names}) key {client.address} → {keystore}; "
                  f"actor on chain 0x{client.actor.hex()[:16]}…")
    return load_account(keystore, CLIENT_PASSWORD)


def _share(
    ledger: Ledger, health: Agency, transport: Agency, clerk: LocalAccount, analyst: LocalAccount
) -> tuple[int, str, LocalAccount]:
    """Collect, consent, access, refuse; return (exit code, the record's id, the data subject)."""
    subject = Account.create()
    names = {health.address: health.name, transport.address: transport.name, subject.address: "data subject"}
    with GatewayClient(health.url, clerk) as health_gw, \
            GatewayClient(transport.url, analyst) as transport_gw, \
            GatewayClient(transport.url, subject) as subject_app:
        step("the health bureau's clerk collects a contact trace through its gateway, signing with her own key")
        payload = {"name": "Lee", "phone": "555-0101", "district": "North", "visited_at": "2026-11-20"}
        stored = health_gw.put_record(subject.address, CONTACT_TRACE, payload, idempotency_key="intake-0001")
        record = stored["record"]
        console.print(f"    record {record[:18]}… {stored['state']}, commitment {stored['commitment'][:18]}… "
                      "(ciphertext stays at the health bureau)")
        try:
            health_gw.put_record(subject.address, CONTACT_TRACE, {"name": "Lee", "blood_type": "O+"})
        except GatewayError as refused:
            console.print(f"    [yellow]refused:[/] HTTP {refused.status} {refused.detail}")

        step("the data subject signs a one-time EIP-712 consent for the transport bureau")
        consent = Consent.new(subject=subject.address, grantee=transport.address, category=CONTACT_TRACE,
                              purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 7 * 86400, max_uses=1)
        granted = subject_app.sign_and_grant(consent)
        console.print(f"    consent {granted['consent'][:18]}… granted on chain (one use)")

        step("the transport bureau's analyst asks its gateway for the record, for epidemic control")
        access = transport_gw.request_access(record, EPIDEMIC_CONTROL, [consent])
        console.print(f"    access seq {access['seq']} recorded in block {access['block']} (tx {access['tx'][:18]}…) "
                      f"by actor {access['actor'][:18]}… (the analyst, pseudonymous on chain); "
                      f"released by the custodian for that access only")
        withheld = sorted(set(payload) - set(access["payload"]))
        console.print(f"    decrypted and checked against the on-chain commitment: {access['payload']}")
        console.print(f"    identifying fields withheld ({', '.join(withheld)}): the consent does not allow "
                      "identified access")

        step("the transport bureau asks again with the same consent")
        try:
            transport_gw.request_access(record, EPIDEMIC_CONTROL, [consent])
        except GatewayError as refused:
            rule = refused.detail.split("(")[0]
            console.print(f"    [yellow]refused on chain:[/] HTTP {refused.status} {rule} (a new grant is needed)")
        else:
            console.print("[red]the second access was not refused[/]")
            return 1, record, subject

    step("the data subject's record history (from the chain, checkable by anyone)")
    record_id = bytes.fromhex(record[2:])
    info = ledger.record(record_id)
    check = check_record_chain(ledger, record_id)
    console.print(f"    record {record[:18]}… custodian {names[info.custodian]}, subject {names[info.subject]}, "
                  f"retained until {time.strftime('%Y-%m-%d', time.gmtime(info.retain_until))}")
    table = Table("seq", "time (UTC)", "requester", "actor", "purpose", "consent", "head", "tx", "block")
    for e in check.entries:
        table.add_row(
            str(e.seq), time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.timestamp)),
            names.get(e.requester, e.requester), "0x" + e.actor.hex()[:12] + "…", ledger.purpose(e.purpose).name,
            "0x" + e.consent.hex()[:12] + "…",
            "0x" + e.head.hex()[:12] + "…", "0x" + e.tx_hash.hex()[:12] + "…", str(e.block_number),
        )
    console.print(table)
    verdict = "[green]verified[/]" if check.ok else f"[red]BROKEN[/] {check.problems}"
    console.print(f"    hash chain recomputed from events: 0x{check.recomputed.hex()[:16]}… "
                  f"on chain: 0x{check.on_chain.hex()[:16]}… {verdict}")
    return (0 if check.ok else 1), record, subject


def _beyond_consent(
    ledger: Ledger, admins: tuple[TransactionSender, TransactionSender], workdir: Path, transport: Agency,
    analyst: LocalAccount, officer: LocalAccount, auditor: LocalAccount, record: str,
) -> int:
    """A statutory mandate and an emergency override, each recorded on chain, the override reviewed; an exit code."""
    a, b = admins
    step("governance grants the transport bureau a statutory mandate: the epidemic act, cited by hash and URI")
    legal_text = workdir / "epidemic-act.txt"
    legal_text.write_text(LEGAL_TEXT, encoding="utf-8")
    until = ledger.latest_block_time() + 30 * 86400
    govern(ledger, a, b, governance.grant_mandate(transport.address, EPIDEMIC_CONTROL, [CONTACT_TRACE], until,
                                                  keccak(LEGAL_TEXT.encode()), LEGAL_URI))
    mandate = ledger.mandates()[-1]
    console.print(f"    mandate {mandate.id}: contact traces for epidemic control until "
                  f"{time.strftime('%Y-%m-%d', time.gmtime(mandate.valid_until))}, legal text 0x"
                  f"{mandate.legal_text_hash.hex()[:16]}… ({legal_text.name})")
    with GatewayClient(transport.url, analyst) as transport_gw, GatewayClient(transport.url, officer) as officer_gw:
        step(f"the analyst asks again, now under mandate {mandate.id}: no consent is needed")
        access = transport_gw.request_access(record, EPIDEMIC_CONTROL, mandate=mandate.id)
        console.print(f"    access seq {access['seq']} recorded under statutory mandate {access['mandate']} "
                      f"(basis {access['basis']}): {access['payload']}")
        step("governance allows emergency overrides for vital-interest (reviewed within 72 h) and gives the "
             "transport bureau the EMERGENCY role")
        govern(ledger, a, b, governance.set_override_policy([VITAL_INTEREST], OVERRIDE_REVIEW, 5, 30 * 86400))
        govern(ledger, a, b, governance.set_roles(transport.address, Role.REQUESTER | Role.EMERGENCY))
        step("the duty officer breaks the glass: an override for a vital interest, with her justification")
        try:
            transport_gw.request_access(record, VITAL_INTEREST, override_justification=JUSTIFICATION)
        except GatewayError as refused:
            console.print(f"    [yellow]refused:[/] HTTP {refused.status} {refused.detail} (the analyst has no "
                          "emergency role)")
        override = officer_gw.request_access(record, VITAL_INTEREST, override_justification=JUSTIFICATION)
    console.print(f"    access seq {override['seq']} recorded as an emergency override (flagged on chain; "
                  f"justification hash {override['override']['justification_hash'][:18]}…, kept by the "
                  f"transport bureau), review due {_utc(override['override']['review_due'])}")
    step("the audit office reads the justification from the transport bureau and reviews the override on chain")
    with GatewayClient(transport.url, auditor) as audit_office:
        kept = audit_office.audit_override(record, override["seq"])
    console.print(f"    justification ({kept['hash'][:18]}… matches the chain): {kept['justification']}")
    ledger.review_override(ledger.sender(auditor), bytes.fromhex(record[2:]), override["seq"], True,
                           "a vital interest; consent could not be asked in time")
    state = ledger.override_state(bytes.fromhex(record[2:]), override["seq"])
    console.print(f"    override {override['seq']} reviewed: {state.status.name.lower()}")
    return 0


def _basis(line: TraceLine) -> str:
    """Return the legal basis of a trace line in a few words: the consent's id, the mandate, or the override."""
    if line.basis is LegalBasis.MANDATE:
        return f"mandate {int(line.consent or '0x0', 16)}"
    if line.basis is LegalBasis.OVERRIDE:
        return "emergency override"
    return f"consent {line.consent[:12]}…" if line.consent else "none (open)"


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _audit(ledger: Ledger, workdir: Path, subject: str, transport: Agency, auditor: LocalAccount) -> int:
    """Index the chain into `workdir/audit.db`, print the subject's audit trace, verify everything, name the actor."""
    step("the audit trace (`consentledger audit trace --subject …`, from an index of the chain's events)")
    engine = make_engine(f"sqlite:///{workdir / 'audit.db'}")
    console.print(f"    {Indexer(engine, ledger).sync().describe()}")
    table = Table("seq", "time (UTC)", "record", "custodian", "requester", "actor", "purpose", "legal basis", "tx",
                  "block")
    lines = trace(engine, subject=subject)
    for line in lines:
        table.add_row(
            str(line.seq), line.time.strftime("%Y-%m-%d %H:%M:%S"), line.record[:12] + "…",
            line.custodian_name or str(line.custodian), line.requester_name or line.requester,
            (line.actor or "organisation")[:12] + "…", line.purpose_name or str(line.purpose), _basis(line),
            line.tx_hash[:12] + "…", str(line.block),
        )
    console.print(table)
    report = verify(engine, ledger)
    engine.dispose()
    console.print(f"    `consentledger audit verify`: {'[green]' if report.ok else '[red]'}{report.summary()}[/]")
    for discrepancy in report.discrepancies:
        console.print(f"    [red]{discrepancy.line()}[/]")
    actors = sorted({line.actor for line in lines if line.actor})
    step("the auditor asks the transport bureau who that actor is (`consentledger audit actor`)")
    with GatewayClient(transport.url, auditor) as audit_office:
        for actor in actors:
            _, disclosed = check_disclosure(ledger, audit_office.who_is(actor))
            console.print(f"    {'[green]verified[/]' if disclosed.ok else '[red]NOT VERIFIED[/]'}: {disclosed.reason}")
            if not disclosed.ok:
                return 1
    return 0 if report.ok else 1


def _write_env(workdir: Path, rpc_url: str, manifest: Path, health: Agency, transport: Agency, record: str,
               subject: LocalAccount) -> None:
    """Write the subject's keystore and `workdir/env`, the variables the README's examples use."""
    keystore = workdir / "subject.json"
    new_keystore(keystore, SUBJECT_PASSWORD, account=subject, overwrite=True)
    samples = workdir / "samples"
    samples.mkdir(exist_ok=True)
    for name, payload in SAMPLE_PAYLOADS.items():
        (samples / f"{name}.json").write_text(json.dumps(payload) + "\n")
    variables = {
        "CONSENTLEDGER_RPC": rpc_url,
        "CONSENTLEDGER_MANIFEST": str(manifest),
        "CONSENTLEDGER_AUDIT_DB": f"sqlite:///{workdir / 'audit.db'}",
        PASSWORD_ENV: DEV_PASSWORD,
        "CONSENTLEDGER_SUBJECT_PASSWORD": SUBJECT_PASSWORD,
        "HEALTH": health.url,
        "HEALTH_CONFIG": str(health.created.config),
        "TRANSPORT": transport.url,
        "TRANSPORT_CONFIG": str(transport.created.config),
        "CLERK_KEYSTORE": str(workdir / "clients" / "ana.json"),
        "ANALYST_KEYSTORE": str(workdir / "clients" / "tom.json"),
        "OFFICER_KEYSTORE": str(workdir / "clients" / "eva.json"),
        "LEGAL_TEXT": str(workdir / "epidemic-act.txt"),
        "HEALTH_DEV_ACCOUNT": str(HEALTH_DEV_ACCOUNT),
        "TRANSPORT_DEV_ACCOUNT": str(TRANSPORT_DEV_ACCOUNT),
        "AUDITOR_DEV_ACCOUNT": str(AUDITOR_DEV_ACCOUNT),
        "SUBJECT": subject.address,
        "SUBJECT_KEYSTORE": str(keystore),
        "RECORD": record,
        "TRANSPORT_ADDRESS": transport.address,
        "HEALTH_ADDRESS": health.address,
        "HEALTH_PID": str(_pid(health)),
        "TRANSPORT_PID": str(_pid(transport)),
        "AGENCY_PORT": str(free_port()),
        "SAMPLES": str(samples),
        "TRACE_PAYLOAD": str(samples / "trace.json"),
    }
    lines = [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    (workdir / "env").write_text("# written by scripts/demo.py: `source` it to try the README's examples\n"
                                 + "\n".join(lines) + "\n")


def _pid(agency: Agency) -> int:
    """Return the process id of `agency`'s running gateway (the key rotation examples stop and restart it)."""
    assert agency.process is not None, f"{agency.name}'s gateway is not running"
    return agency.process.pid


def _serve_until_stopped(workdir: Path, agencies: list[Agency]) -> None:
    """Keep the chain and the gateways up until SIGINT or SIGTERM, saying how to use them.

    A gateway stopped from outside (`kill $HEALTH_PID`, as the key rotation example does) is reaped within half a
    second, so `kill -0 PID` tells the shell when it is gone.
    """
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    step(f"serving: chain and both gateways keep running; in another shell `source {workdir / 'env'}` and try "
         "the README's examples (Ctrl-C here stops everything)")
    console.print("    e.g. .venv/bin/consentledger audit trace --subject $SUBJECT")
    while not stop.wait(0.5):
        for agency in agencies:
            if agency.process is not None:
                agency.process.poll()


def main() -> int:
    """Start a local chain unless --rpc is given, run the story, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", choices=[k.value for k in ChainKind], default=ChainKind.GANACHE.value)
    parser.add_argument("--rpc", help="use this running chain (its dev accounts 0-6 must be funded)")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="where agencies keep keys and stores")
    parser.add_argument("--serve", action="store_true", help="keep the chain and gateways running after the story")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    if args.rpc:
        return run_story(args.rpc, args.workdir.resolve(), serve=args.serve)
    step(f"starting a local {args.chain} chain")
    with start_node(ChainKind(args.chain)) as node:
        console.print(f"    {node.rpc_url} (chain id {node.chain_id})")
        code = run_story(node.rpc_url, args.workdir.resolve(), serve=args.serve)
    step("chain stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
