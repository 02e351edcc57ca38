"""A local consortium for demos, tests and benchmarks: agencies with keys, configs and gateway processes.

Development only: it signs with the local chain's well-known dev accounts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from consentledger import governance
from consentledger.chain.accounts import dev_account
from consentledger.chain.ledger import Ledger
from consentledger.chain.node import free_port
from consentledger.chain.sender import TransactionSender
from consentledger.errors import NodeStartError
from consentledger.gateway.admin.setup import NewAgency, init_agency
from consentledger.types import Role

PASSWORD_ENV = "CONSENTLEDGER_KEY_PASSWORD"
DEV_PASSWORD = "local development only"


@dataclass
class Agency:
    """An agency set up on disk: its config, address and keys, and (once started) its gateway."""

    name: str
    directory: Path
    created: NewAgency
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None  # a replica: another process of the same config, listening here
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """Return the agency's signer address."""
        return self.created.address

    @property
    def url(self) -> str:
        """Return the gateway's base URL (a replica's own, not the one registered on chain)."""
        return self.created.public_url if self.port is None else f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the gateway process's log file."""
        return self.directory / ("gateway.log" if self.port is None else f"gateway-{self.port}.log")

    def replica(self) -> Agency:
        """Return another gateway process of this agency (same config and store) on a free port, not started."""
        return Agency(self.name, self.directory, self.created, port=free_port())

    def start(self, *, timeout: float = 60.0, env: dict[str, str] | None = None) -> None:
        """Start `consentledger gateway serve` for this agency and wait until /v1/health answers."""
        cli = Path(sys.executable).parent / "consentledger"
        port = {} if self.port is None else {"CONSENTLEDGER_GATEWAY_PORT": str(self.port)}
        environment = {**os.environ, PASSWORD_ENV: DEV_PASSWORD, **port, **(env or {})}
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(cli), "gateway", "serve", "--config", str(self.created.config)],
            stdout=self._log, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NodeStartError(f"gateway {self.name} exited: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise NodeStartError(f"gateway {self.name} did not answer within {timeout:.0f} s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the gateway process (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the gateway log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def create_agency(
    root: Path, name: str, *, dev_index: int, rpc_url: str, manifest: Path, store_url: str | None = None
) -> Agency:
    """Create an agency directory under `root` signing with dev account `dev_index`, on a free port."""
    directory = root / name.replace(" ", "-")
    created = init_agency(
        directory, name, DEV_PASSWORD, rpc_url=rpc_url, manifest=manifest, port=free_port(),
        store_url=store_url or "sqlite:///agency.db", password_env=PASSWORD_ENV, account=dev_account(dev_index),
    )
    return Agency(name, directory, created)


def admit(ledger: Ledger, proposer: TransactionSender, approvers: list[TransactionSender], agency: Agency,
          roles: Role) -> None:
    """Admit `agency` with its X25519 key and gateway URL through governance (propose + approvals)."""
    proposed = governance.admit_member(agency.address, roles, agency.name, agency.created.x25519_public, agency.url)
    proposal, executed = ledger.propose(proposer, proposed)
    for approver in approvers:
        if executed:
            break
        executed = ledger.approve(approver, proposal)
    if not executed:
        raise RuntimeError(f"admitting {agency.name} did not reach the threshold")
