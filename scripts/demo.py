#!/usr/bin/env python3
"""The sharing story end to end on a fresh local chain, printed as it happens.

A consortium of three ministries is founded with a 2-of-3 threshold; governance admits a health
bureau (custodian) and a transport bureau (requester) and approves a catalog; the health bureau
registers a record; its data subject signs a one-time consent; the transport bureau's access is
recorded on chain; a second access is refused; the record's chain of responsibility is printed
and its hash chain verified.
"""

from __future__ import annotations

import argparse
import sys
import time

from eth_account import Account
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

from consentledger import governance
from consentledger.chain.accounts import dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.history import check_record_chain
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import ChainKind, start_node
from consentledger.chain.sender import TransactionSender
from consentledger.consent import Consent, consent_id, sign_consent
from consentledger.errors import ContractRevertError
from consentledger.types import Role, Sensitivity

console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 130)
EPIDEMIC_CONTROL = 1
CONTACT_TRACE = 1


def step(text: str) -> None:
    """Print a story step."""
    console.print(f"[bold cyan]▸[/] {text}")


def govern(ledger: Ledger, proposer: TransactionSender, approver: TransactionSender,
           proposed: governance.ProposedAction) -> None:
    """Propose with one admin, approve with another (2 of 3), and say what ran."""
    proposal_id, _ = ledger.propose(proposer, proposed)
    executed = ledger.approve(approver, proposal_id)
    assert executed, "a 2-of-3 proposal must run on its second approval"
    described = proposed.describe()
    described = described if len(described) <= 90 else described[:89] + "…"
    console.print(f"    proposal {proposal_id} approved 2 of 3 and executed: {described}")


def run_story(rpc_url: str) -> int:
    """Run the story against a chain whose first dev accounts are funded; return an exit code."""
    w3 = connect(rpc_url)
    ministry_a, ministry_b, ministry_c, health, transport, relayer = dev_accounts(6)
    names = {a.address: n for a, n in [(ministry_a, "ministry A"), (ministry_b, "ministry B"),
                                       (ministry_c, "ministry C"), (health, "health bureau"),
                                       (transport, "transport bureau")]}

    step("deploying Consortium + AccessLedger (2-of-3 admins)")
    ledger = deploy(w3, ministry_a, [ministry_a.address, ministry_b.address, ministry_c.address], 2,
                    admin_names=["ministry A", "ministry B", "ministry C"])
    d = ledger.deployment
    console.print(f"    chain {d.chain_id}: Consortium {d.address_of('Consortium')}, "
                  f"AccessLedger {d.address_of('AccessLedger')}")
    a, b = ledger.sender(ministry_a), ledger.sender(ministry_b)

    step("governance: purpose, catalog category, and two member agencies")
    govern(ledger, a, b, governance.add_purpose(EPIDEMIC_CONTROL, "epidemic-control"))
    govern(ledger, a, b, governance.add_category(
        CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME, 30 * 86400,
        ["name", "phone", "district", "visited_at"], ["name", "phone"], [EPIDEMIC_CONTROL]))
    govern(ledger, a, b, governance.admit_member(
        health.address, Role.CUSTODIAN, "health bureau", b"\x01" * 32, "http://127.0.0.1:9001"))
    govern(ledger, a, b, governance.admit_member(
        transport.address, Role.REQUESTER, "transport bureau", b"\x02" * 32, "http://127.0.0.1:9002"))

    step("health bureau registers a record (only a salted commitment goes on chain)")
    subject = Account.create()
    names[subject.address] = "data subject"
    record_id = keccak(text="health-bureau/record/0001")
    plaintext = b'{"district":"North","name":"Lee","phone":"555-0101","visited_at":"2026-11-20"}'
    commitment = keccak(b"\x5a" * 32 + plaintext)
    ledger.register_record(ledger.sender(health), record_id, subject.address, CONTACT_TRACE, commitment)
    console.print(f"    record 0x{record_id.hex()[:16]}… subject {subject.address[:10]}… "
                  f"category contact-trace (one-time)")

    step("the data subject signs a one-time EIP-712 consent for the transport bureau; a relayer submits it")
    consent = Consent.new(subject=subject.address, grantee=transport.address, category=CONTACT_TRACE,
                          purpose=EPIDEMIC_CONTROL, valid_until=int(time.time()) + 7 * 86400, max_uses=1)
    signature = sign_consent(consent, subject.key, ledger.domain())
    granted = ledger.grant_consent(ledger.sender(relayer), consent, signature)
    assert granted == consent_id(consent, ledger.domain())
    console.print(f"    consent 0x{granted.hex()[:16]}… granted (uses allowed: 1)")

    step("transport bureau requests access for epidemic control")
    requester = ledger.sender(transport)
    entry = ledger.request_access(requester, record_id, EPIDEMIC_CONTROL, [consent])
    console.print(f"    access recorded: seq {entry.seq}, block {entry.block_number}, head 0x{entry.head.hex()[:16]}…")

    step("transport bureau asks again with the same consent")
    try:
        ledger.request_access(requester, record_id, EPIDEMIC_CONTROL, [consent])
    except ContractRevertError as refused:
        console.print(f"    [yellow]refused on chain:[/] {refused.rule} (a new grant is needed)")
    else:
        console.print("[red]the second access was not refused[/]")
        return 1

    step("the record's chain of responsibility")
    check = check_record_chain(ledger, record_id)
    info = ledger.record(record_id)
    table = Table("seq", "time (UTC)", "requester", "purpose", "consent", "head", "tx", "block")
    for e in check.entries:
        table.add_row(
            str(e.seq), time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.timestamp)),
            names.get(e.requester, e.requester),
            ledger.purpose(e.purpose).name, "0x" + e.consent.hex()[:12] + "…", "0x" + e.head.hex()[:12] + "…",
            "0x" + e.tx_hash.hex()[:12] + "…", str(e.block_number),
        )
    console.print(f"    custodian {names[info.custodian]}, subject {names[info.subject]}, "
                  f"retained until {time.strftime('%Y-%m-%d', time.gmtime(info.retain_until))}")
    console.print(table)
    verdict = "[green]verified[/]" if check.ok else f"[red]BROKEN[/] {check.problems}"
    console.print(f"    hash chain recomputed from events: 0x{check.recomputed.hex()[:16]}… "
                  f"on chain: 0x{check.on_chain.hex()[:16]}… {verdict}")
    return 0 if check.ok else 1


def main() -> int:
    """Start a local chain unless --rpc is given, run the story, stop the chain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", choices=[k.value for k in ChainKind], default=ChainKind.GANACHE.value)
    parser.add_argument("--rpc", help="use this running chain (its dev accounts 0-5 must be funded)")
    args = parser.parse_args()
    if args.rpc:
        return run_story(args.rpc)
    step(f"starting a local {args.chain} chain")
    with start_node(ChainKind(args.chain)) as node:
        console.print(f"    {node.rpc_url} (chain id {node.chain_id})")
        code = run_story(node.rpc_url)
    step("chain stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
