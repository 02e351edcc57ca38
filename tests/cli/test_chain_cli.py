"""`consentledger chain up` and `consentledger keys` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from eth_account import Account

from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.node import ChainKind, LocalNode, wait_for_rpc
from consentledger.crypto.keys import load_account
from consentledger.ports import held_port, hold_port

CLI = str(Path(sys.executable).parent / "consentledger")
PASSWORD_ENV = "TEST_ORG_KEY_PASSWORD"


class OutputReader:
    """Reads a process's stdout on a thread, so lines can be awaited and nothing is lost."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str:
        """Return the rest of the first line starting with `prefix`."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                pytest.fail(f"output ended without a {prefix!r} line: {self.lines}")
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()

    def text(self) -> str:
        """Return everything read, once the stream has closed."""
        self._thread.join(timeout=10)
        return "".join(self.lines)


def chain_processes_on(port: int) -> list[str]:
    """Return `ps` lines of live (non-zombie) chain processes started with `port`."""
    listing = subprocess.run(
        ["ps", "-e", "-ww", "-o", "pid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    flags = {"--port", "--server.port"}
    found = []
    for line in listing.splitlines():
        _pid, state, *rest = line.split(maxsplit=2)
        args = rest[0].split() if rest else []
        bound = any(a in flags and b == str(port) for a, b in zip(args, args[1:], strict=False))
        if bound and not state.startswith("Z"):
            found.append(line)
    return found


def port_is_closed(port: int) -> bool:
    """Return whether connecting to 127.0.0.1:`port` is refused."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion; return its completed process."""
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.process
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("kind", "stop_signal"),
    [
        (ChainKind.ANVIL, signal.SIGINT),
        (ChainKind.GANACHE, signal.SIGINT),
        (ChainKind.ANVIL, signal.SIGTERM),
    ],
)
def test_chain_up_serves_rpc_until_signalled_then_exits_zero(
    kind: ChainKind, stop_signal: signal.Signals, tmp_path: Path
) -> None:
    """chain up prints its RPC URL and dev keys, serves chain id 1337, and exits 0 on a signal."""
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err_file:
        process = subprocess.Popen(
            [CLI, "chain", "up", "--kind", kind.value, "--accounts", "2"],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
    assert process.stdout is not None
    output = OutputReader(process.stdout)
    port = 0
    try:
        url = output.wait_for("RPC URL: ", timeout=60)
        port = int(url.rsplit(":", 1)[1])
        assert url == f"http://127.0.0.1:{port}"
        assert wait_for_rpc(url, timeout=5) == 1337
        assert chain_processes_on(port)
        process.send_signal(stop_signal)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
            # A killed CLI cannot stop its chain (own process group): do it here.
            for line in chain_processes_on(port) if port else []:
                os.kill(int(line.split()[0]), signal.SIGKILL)
    assert process.returncode == 0, stderr.read_text()
    out = output.text()
    assert dev_account(1).address in out and "never use on a real network" in out
    assert "0x" + dev_account(0).key.hex() in out
    assert port_is_closed(port)
    assert chain_processes_on(port) == []


def test_free_gas_on_ganache_fails_with_one_readable_line_and_exit_code_2() -> None:
    """`chain up --free-gas` on ganache says it needs anvil (ConfigurationError's exit code) and starts nothing."""
    result = run_cli("chain", "up", "--kind", "ganache", "--free-gas", env=dict(os.environ))
    assert result.returncode == 2
    assert "free gas needs anvil" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_bad_option_is_a_usage_error_with_exit_code_2() -> None:
    """An unknown --kind prints click's message and exits 2."""
    result = run_cli("chain", "up", "--kind", "geth", env=dict(os.environ))
    assert result.returncode == 2
    assert "Invalid value for '--kind'" in result.stderr


def test_keys_new_writes_a_keystore_loadable_with_the_env_password(tmp_path: Path) -> None:
    """keys new prints the address of a keystore that decrypts with the variable's password."""
    out = tmp_path / "org1.json"
    env = {**os.environ, PASSWORD_ENV: "s3cret"}
    result = run_cli("keys", "new", "--out", str(out), "--password-env", PASSWORD_ENV, env=env)
    assert result.returncode == 0, result.stderr
    address = result.stdout.strip()
    assert load_account(out, "s3cret").address == address
    shown = run_cli("keys", "show", str(out), env=dict(os.environ))
    assert shown.returncode == 0 and shown.stdout.strip() == address


def test_keys_new_from_dev_account_encrypts_that_account(tmp_path: Path) -> None:
    """keys new --from-dev-account N stores dev account N."""
    out = tmp_path / "dev2.json"
    env = {**os.environ, "CONSENTLEDGER_KEY_PASSWORD": "pw"}
    result = run_cli("keys", "new", "--out", str(out), "--from-dev-account", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == dev_account(2).address
    again = run_cli("keys", "new", "--out", str(out), env=env)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_keys_new_without_password_env_fails_with_one_readable_line(tmp_path: Path) -> None:
    """A missing password variable exits non-zero with one stderr line naming it; no file."""
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    out = tmp_path / "org1.json"
    result = run_cli("keys", "new", "--out", str(out), "--password-env", PASSWORD_ENV, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and PASSWORD_ENV in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


FUND_PAYER = 19
"""Dev account `chain fund` pays from here (tests/chain uses it too, never at the same time)."""


@pytest.mark.process
def test_chain_fund_pays_with_a_unit_and_prints_the_grown_balance(ganache: LocalNode, tmp_path: Path) -> None:
    """From a dev account (`--dev-account`, or `--from-dev-account`) and from a keystore: each transfer is mined
    and the printed balance is the chain's."""
    to = Account.create().address
    w3 = connect(ganache.rpc_url)
    payer = dev_account(FUND_PAYER).address
    env = {**os.environ, PASSWORD_ENV: "pw"}
    keystore = write_keystore(tmp_path / "payer.json", bytes(dev_account(FUND_PAYER).key))
    payments = [
        (["--amount", "0.5 ether", "--dev-account", str(FUND_PAYER)], "0.5 ether", "0.5 ether"),
        (["--amount", "1000000gwei", "--from-dev-account", str(FUND_PAYER)], "0.001 ether", "0.501 ether"),
        (["--amount", "21000", "--keystore", str(keystore), "--password-env", PASSWORD_ENV], "21000 wei",
         "0.501000000000021 ether"),
    ]
    for options, amount, balance in payments:
        paid = run_cli("chain", "fund", to, "--rpc", ganache.rpc_url, *options, env=env)
        assert paid.returncode == 0, paid.stderr
        first, second = paid.stdout.splitlines()
        assert first.startswith(f"sent {amount} from {payer} to {to} in tx 0x"), first
        assert second == f"balance of {to}: {balance}"
    assert w3.eth.get_balance(to) == 501_000_000_000_021_000  # type: ignore[arg-type]


@pytest.mark.process
def test_chain_fund_refuses_bad_input_with_one_line_and_its_exit_code(
    ganache: LocalNode, tmp_path: Path, closed_port: int
) -> None:
    """A bad amount or address, no payer (2), an unreachable chain (4), a payer that cannot pay (24): one stderr line
    each, no traceback, and nothing sent."""
    to = Account.create().address
    env = {**os.environ, PASSWORD_ENV: "pw"}
    broke = write_keystore(tmp_path / "broke.json", bytes(Account.create().key))
    rpc = ["--rpc", ganache.rpc_url]
    closed = closed_port
    cases = [
        ([to, "--amount", "1banana", *rpc, "--dev-account", "0"], 2, "bad amount '1banana': use a number and a unit"),
        ([to, "--amount", "0.5wei", *rpc, "--dev-account", "0"], 2, "it is not a whole number of wei"),
        ([to[:-1], "--amount", "1ether", *rpc, "--dev-account", "0"], 2, "is not an address"),
        ([to, "--amount", "1ether", *rpc], 2, "no signer: pass --keystore FILE"),
        ([to, "--amount", "1ether", "--rpc", f"http://127.0.0.1:{closed}", "--dev-account", "0"], 4,
         f"error: chain unreachable at http://127.0.0.1:{closed}: connection refused"),
        ([to, "--amount", "1ether", *rpc, "--keystore", str(broke), "--password-env", PASSWORD_ENV], 24,
         "has 0 wei; sending 1 ether needs ≥ 1.000042 ether (with 21,000 gas at gas price 2 gwei)"),
    ]
    for args, code, message in cases:
        refused = run_cli("chain", "fund", *args, env=env)
        lines = refused.stderr.strip().splitlines()
        assert (refused.returncode, len(lines)) == (code, 1), refused.stderr
        assert message in lines[0] and "Traceback" not in refused.stderr, refused.stderr
    assert connect(ganache.rpc_url).eth.get_balance(to) == 0  # type: ignore[arg-type]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on, held (bound, not listening) so no other process serves it meanwhile."""
    with hold_port() as held:
        yield held_port(held)


def write_keystore(path: Path, key: bytes) -> Path:
    """Write `key` to a keystore at `path` under the password "pw" (light scrypt: tests need no strength)."""
    path.write_text(json.dumps(Account.encrypt(key, "pw", kdf="scrypt", iterations=2**12)))
    return path


def test_chain_up_on_a_taken_port_exits_2_with_one_line() -> None:
    """`chain up --port N` with N taken: one line naming the port, the configuration exit code 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("chain", "up", "--kind", "anvil", "--port", str(port), env=dict(os.environ))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: cannot start anvil: port {port} on 127.0.0.1 is already in use"
