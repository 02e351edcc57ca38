#!/usr/bin/env python3
"""The sharing story end to end: a local chain, two agency gateways as real processes, one data subject.

Three ministries found a consortium (2-of-3). Governance approves a purpose and a catalog category
and admits a health bureau (custodian) and a transport bureau (requester), each with its own
gateway. The health bureau collects records through its gateway (a field off the positive list is
refused); the data subject signs a one-time consent; the transport bureau's gateway records the
access on chain, fetches the key from the health bureau's gateway and decrypts; a second access is
refused; the subject's record history is printed with its hash chain verified.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from eth_account import Account
from rich.console import Console
from rich.table import Table

from consentledger import governance
from consentledger.chain.accounts import dev_account, dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.history import check_record_chain
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, start_node
from consentledger.chain.sender import TransactionSender
from consentledger.client import GatewayClient
from consentledger.consent import Consent
from consentledger.errors import GatewayError
from consentledger.localnet import Agency, admit, create_agency
from consentledger.types import Role, Sensitivity

console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 130)
EPIDEMIC_CONTROL = 1
CONTACT_TRACE = 1
HEALTH_DEV_ACCOUNT, TRANSPORT_DEV_ACCOUNT = 5, 6


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


def run_story(rpc_url: str, workdir: Path) -> int:
    """Run the story against a chain whose dev accounts 0-6 are funded; return an exit code."""
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

    step("governance: an emergency purpose and the positive list")
    govern(ledger, a, b, governance.add_purpose(EPIDEMIC_CONTROL, "epidemic-control"))
    govern(ledger, a, b, governance.add_category(
        CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME, 30 * 86400,
        ["name", "phone", "district", "visited_at"], ["name", "phone"], [EPIDEMIC_CONTROL]))

    step("two agencies get keys and configs (`consentledger agency init`); governance admits them")
    health = create_agency(workdir, "health bureau", dev_index=HEALTH_DEV_ACCOUNT, rpc_url=rpc_url, manifest=manifest)
    transport = create_agency(workdir, "transport bureau", dev_index=TRANSPORT_DEV_ACCOUNT, rpc_url=rpc_url,
                              manifest=manifest)
    for agency, roles in ((health, Role.CUSTODIAN), (transport, Role.REQUESTER)):
        admit(ledger, a, [b], agency, roles)
        console.print(f"    admitted {agency.name} {agency.address} gateway {agency.url} "
                      f"x25519 {agency.created.x25519_public.hex()[:16]}…")

    step("starting both gateways as real processes (`consentledger gateway serve`)")
    agencies: list[Agency] = [health, transport]
    try:
        for agency in agencies:
            agency.start()
        return _share(ledger, health, transport)
    finally:
        for agency in agencies:
            agency.stop()
        step("gateways stopped")


def _share(ledger: Ledger, health: Agency, transport: Agency) -> int:
    subject = Account.create()
    names = {health.address: health.name, transport.address: transport.name, subject.address: "data subject"}
    with GatewayClient(health.url, dev_account(HEALTH_DEV_ACCOUNT)) as health_gw, \
            GatewayClient(transport.url, dev_account(TRANSPORT_DEV_ACCOUNT)) as transport_gw, \
            GatewayClient(transport.url, subject) as subject_app:
        step("the health bureau collects a contact trace through its gateway")
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

        step("the transport bureau asks its gateway for the record, for epidemic control")
        access = transport_gw.request_access(record, EPIDEMIC_CONTROL, [consent])
        console.print(f"    access seq {access['seq']} recorded in block {access['block']} (tx {access['tx'][:18]}…); "
                      f"key released by the custodian for that access only")
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
            return 1

    step("the data subject's record history (from the chain, checkable by anyone)")
    record_id = bytes.fromhex(record[2:])
    info = ledger.record(record_id)
    check = check_record_chain(ledger, record_id)
    console.print(f"    record {record[:18]}… custodian {names[info.custodian]}, subject {names[info.subject]}, "
                  f"retained until {time.strftime('%Y-%m-%d', time.gmtime(info.retain_until))}")
    table = Table("seq", "time (UTC)", "requester", "purpose", "consent", "head", "tx", "block")
    for e in check.entries:
        table.add_row(
            str(e.seq), time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.timestamp)),
            names.get(e.requester, e.requester), ledger.purpose(e.purpose).name, "0x" + e.consent.hex()[:12] + "…",
            "0x" + e.head.hex()[:12] + "…", "0x" + e.tx_hash.hex()[:12] + "…", str(e.block_number),
        )
    console.print(table)
    verdict = "[green]verified[/]" if check.ok else f"[red]BROKEN[/] {check.problems}"
    console.print(f"    hash chain recomputed from events: 0x{check.recomputed.hex()[:16]}… "
                  f"on chain: 0x{check.on_chain.hex()[:16]}… {verdict}")
    return 0 if check.ok else 1


def main() -> int:
    """Start a local chain unless --rpc is given, run the story, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", choices=[k.value for k in ChainKind], default=ChainKind.GANACHE.value)
    parser.add_argument("--rpc", help="use this running chain (its dev accounts 0-6 must be funded)")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="where agencies keep keys and stores")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    if args.rpc:
        return run_story(args.rpc, args.workdir.resolve())
    step(f"starting a local {args.chain} chain")
    with start_node(ChainKind(args.chain)) as node:
        console.print(f"    {node.rpc_url} (chain id {node.chain_id})")
        code = run_story(node.rpc_url, args.workdir.resolve())
    step("chain stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
