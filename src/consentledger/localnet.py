"""A local consortium for demos, tests and benchmarks: agencies with keys, configs and gateway processes.

Development only: it signs with the local chain's well-known dev accounts.
"""

from __future__ import annotations

import contextlib
import os
import socket
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
from consentledger.chain.sender import TransactionSender
from consentledger.errors import NodeStartError, PortInUseError
from consentledger.gateway.admin.setup import NewAgency, init_agency
from consentledger.ports import held_port, hold_port
from consentledger.types import Role

PASSWORD_ENV = "CONSENTLEDGER_KEY_PASSWORD"
DEV_PASSWORD = "local development only"


@dataclass
class Agency:
    """An agency set up on disk: its config, address and keys, and (once started) its gateway.

    `hold` keeps the gateway's port while no gateway process serves it (see `consentledger.ports`):
    from `create_agency` until `start`, and again after `stop`, so no other process takes it.
    """

    name: str
    directory: Path
    created: NewAgency
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None  # a replica: another process of the same config, listening here
    hold: socket.socket | None = field(default=None, repr=False)
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
        hold = hold_port()
        return Agency(self.name, self.directory, self.created, port=held_port(hold), hold=hold)

    @property
    def listen_port(self) -> int:
        """Return the port this agency's gateway process listens on."""
        return self.port if self.port is not None else int(self.created.public_url.rsplit(":", 1)[1])

    def start(self, *, timeout: float = 60.0, env: dict[str, str] | None = None) -> None:
        """Start `consentledger gateway serve` for this agency and wait until /v1/health answers.

        The process inherits the held port (held anew if it is not, PortInUseError if taken): no
        other process can have taken it since it was picked, so what answers is this gateway.
        """
        cli = Path(sys.executable).parent / "consentledger"
        port = {} if self.port is None else {"CONSENTLEDGER_GATEWAY_PORT": str(self.port)}
        environment = {**os.environ, PASSWORD_ENV: DEV_PASSWORD, **port, **(env or {})}
        hold = self.hold if self.hold is not None else hold_port(self.listen_port)
        self.hold = None
        self._log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [str(cli), "gateway", "serve", "--config", str(self.created.config), "--listen-fd", str(hold.fileno())],
                stdout=self._log, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
                pass_fds=(hold.fileno(),),
            )
        finally:
            hold.close()  # the gateway owns the port now: once it exits, connections are refused
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
        if self.hold is None and self.process is not None:
            # Hold the port until the next start; one a stranger took at once just fails that start.
            with contextlib.suppress(PortInUseError):
                self.hold = hold_port(self.listen_port)
        if self._log is not None:
            self._log.close()
            self._log = None

    def release(self) -> None:
        """Stop holding the port (after `stop`, for good): any process may take it from now on."""
        if self.hold is not None:
            self.hold.close()
            self.hold = None

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the gateway log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def create_agency(
    root: Path, name: str, *, dev_index: int, rpc_url: str, manifest: Path, store_url: str | None = None
) -> Agency:
    """Create an agency directory under `root` signing with dev account `dev_index`, on a free port it holds."""
    directory = root / name.replace(" ", "-")
    hold = hold_port()
    try:
        created = init_agency(
            directory, name, DEV_PASSWORD, rpc_url=rpc_url, manifest=manifest, port=held_port(hold),
            store_url=store_url or "sqlite:///agency.db", password_env=PASSWORD_ENV, account=dev_account(dev_index),
        )
    except BaseException:
        hold.close()
        raise
    return Agency(name, directory, created, hold=hold)


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
