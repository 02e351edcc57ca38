"""A real anvil deployment for the legal-basis CLI tests: governed members and catalog, a record, and a CLI runner.

`build_world` deploys with three admins (2-of-3) through `Ledger`, governs in the catalog and the members,
registers one record and writes the manifest; each test then runs the console script against it and
`World.fresh()` rewinds the chain to the state after setup (anvil's evm_snapshot / evm_revert).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from consentledger import governance as gov
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import LocalNode
from consentledger.governance import ProposedAction
from consentledger.types import Role, Sensitivity

CLI = str(Path(sys.executable).parent / "consentledger")
DAY = 86_400
EPIDEMIC, RESEARCH = 1, 2
CONTACT_TRACE, LAB_RESULT = 1, 2
ADMINS = (0, 1, 2)
AUDITOR, HEALTH, TRANSPORT, POLICE, LIBRARY, OUTSIDER = 3, 5, 6, 7, 8, 9
"""Dev account indexes: the audit office (AUDITOR), health (CUSTODIAN), transport (REQUESTER, EMERGENCY and
AUDITOR: it may not review its own overrides), police (REQUESTER), the library (CUSTODIAN only) and one never
admitted."""
RECORD = keccak(text="legal-bases cli: contact trace")


@dataclass
class World:
    """The deployment, its manifest and the chain-time helpers a test needs."""

    node: LocalNode
    directory: Path
    research_sunset: int
    snapshot: str = ""

    @property
    def manifest(self) -> Path:
        """Return the deployment manifest the CLI reads."""
        return self.directory / "deployment.json"

    def ledger(self) -> Ledger:
        """Return a fresh Ledger (its nonce allocator knows nothing of a rewound chain)."""
        from consentledger.chain.manifest import Deployment

        return Ledger(connect(self.node.rpc_url), Deployment.load(self.manifest))

    def rpc(self, method: str, *params: Any) -> Any:
        """Send a raw JSON-RPC request to anvil and return its result."""
        answer = connect(self.node.rpc_url).provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in answer, answer
        return answer["result"]

    def fresh(self) -> None:
        """Rewind the chain to the state after setup and take the snapshot again (a revert consumes it)."""
        if self.snapshot:
            assert self.rpc("evm_revert", self.snapshot)
        self.snapshot = self.rpc("evm_snapshot")

    def now(self) -> int:
        """Return the latest block's timestamp."""
        return self.ledger().latest_block()[1]

    def advance(self, seconds: int) -> None:
        """Move the chain clock `seconds` ahead and mine a block at that time."""
        self.rpc("evm_increaseTime", seconds)
        self.rpc("evm_mine")

    def govern(self, proposed: ProposedAction) -> None:
        """Run `proposed` through 2-of-3 governance: admin 0 proposes, admin 1 approves."""
        govern(self.ledger(), proposed)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the console script against this deployment, like an operator would."""
        env = {**os.environ, "CONSENTLEDGER_RPC": self.node.rpc_url, "CONSENTLEDGER_MANIFEST": str(self.manifest)}
        return subprocess.run([CLI, *args], cwd=self.directory, env=env, capture_output=True, text=True,
                              timeout=120)

    def ok(self, *args: str) -> str:
        """Run the console script; assert it succeeded and return its stdout."""
        result = self.cli(*args)
        assert result.returncode == 0, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
        return result.stdout

    def proposal_count(self) -> int:
        """Return how many proposals were ever made."""
        return len(self.ledger().proposals())


def account(index: int) -> LocalAccount:
    """Return dev account `index`."""
    return dev_account(index)


def govern(ledger: Ledger, proposed: ProposedAction) -> None:
    """Run `proposed` through 2-of-3 governance: admin 0 proposes, admin 1 approves."""
    proposal, ran = ledger.propose(ledger.sender(account(0)), proposed)
    if not ran:
        assert ledger.approve(ledger.sender(account(1)), proposal), proposed.describe()


def build_world(node: LocalNode, directory: Path) -> World:
    """Deploy, govern in purposes, categories and members, register the record; return the world."""
    w3 = connect(node.rpc_url)
    admins = [account(i) for i in ADMINS]
    ledger = deploy(w3, admins[0], [a.address for a in admins], 2,
                    admin_names=["ministry A", "ministry B", "ministry C"])
    ledger.deployment.save(directory / "deployment.json")
    now = ledger.latest_block()[1]
    research_sunset = now + 10 * DAY
    for proposed in (
        gov.add_purpose(EPIDEMIC, "epidemic-control"),
        gov.add_purpose(RESEARCH, "research", research_sunset),
        gov.add_category(CONTACT_TRACE, "contact-trace", Sensitivity.ONE_TIME, 30 * DAY,
                         ["name", "phone", "district"], ["name", "phone"], [EPIDEMIC]),
        gov.add_category(LAB_RESULT, "lab-result", Sensitivity.PROTECTED, 90 * DAY,
                         ["subject", "test", "result"], ["subject"], [EPIDEMIC, RESEARCH]),
        gov.admit_member(account(AUDITOR).address, Role.AUDITOR, "audit office"),
        gov.admit_member(account(HEALTH).address, Role.CUSTODIAN, "health bureau"),
        gov.admit_member(account(TRANSPORT).address, Role.REQUESTER | Role.EMERGENCY | Role.AUDITOR,
                         "transport bureau"),
        gov.admit_member(account(POLICE).address, Role.REQUESTER, "police"),
        gov.admit_member(account(LIBRARY).address, Role.CUSTODIAN, "library"),
    ):
        govern(ledger, proposed)
    ledger.register_record(ledger.sender(account(HEALTH)), RECORD, dev_account(OUTSIDER + 1).address,
                           CONTACT_TRACE, keccak(text="commitment"))
    ledger.close()
    world = World(node, directory, research_sunset)
    world.fresh()
    return world
