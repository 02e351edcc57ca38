"""Start a local development chain (ganache or anvil) as a child process on a loopback port."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO

from consentledger import paths
from consentledger.chain.accounts import DEV_MNEMONIC
from consentledger.errors import ChainUnavailableError, ConfigurationError, NodeStartError, PortInUseError

HOST = "127.0.0.1"
DEV_BALANCE_ETH = 1_000_000
"""Ether given to every dev account: enough that no test or demo ever runs dry."""
HARDFORK = "shanghai"
"""The newest fork ganache 7.9 knows; anvil is pinned to it too so both chains behave alike."""

FREE_GAS_ANVIL = ("--base-fee", "0", "--gas-price", "0", "--disable-min-priority-fee")
"""anvil's flags for a free-gas chain: without the last, eth_gasPrice still suggests a 1 gwei tip."""

_PORT_ATTEMPTS = 5
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 15
_PORT_IN_USE_MARKERS = ("EADDRINUSE", "Address already in use")
# Where the foundry npm package keeps its native binary for each (system, machine).
_ANVIL_PLATFORM_PACKAGES = {
    ("Linux", "x86_64"): "anvil-linux-amd64",
    ("Linux", "aarch64"): "anvil-linux-arm64",
    ("Darwin", "x86_64"): "anvil-darwin-amd64",
    ("Darwin", "arm64"): "anvil-darwin-arm64",
}


class ChainKind(StrEnum):
    """Which local chain implementation to run."""

    GANACHE = "ganache"
    ANVIL = "anvil"


@dataclass(eq=False)
class LocalNode:
    """A running local chain; stop it with `stop()` or use it as a context manager."""

    kind: ChainKind
    port: int
    rpc_url: str
    chain_id: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    free_gas: bool = False
    """Whether the chain runs with a zero base fee and gas price (see `start_node`)."""
    _stopped: bool = field(default=False, repr=False)

    def running(self) -> bool:
        """Return whether the chain process is still alive."""
        return not self._stopped and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the chain and everything it spawned; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            _terminate_group(self.process, timeout)
        finally:
            if self._log is not None:
                self._log.close()

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_node(
    kind: ChainKind = ChainKind.GANACHE,
    *,
    port: int | None = None,
    accounts: int = 10,
    chain_id: int = 1337,
    block_time: float | None = None,
    free_gas: bool = False,
    log_path: Path | None = None,
    startup_timeout: float = 60,
) -> LocalNode:
    """Return a started local chain answering JSON-RPC on 127.0.0.1.

    The chain funds `accounts` dev accounts (see `chain.accounts`) with `DEV_BALANCE_ETH` each and
    mines instantly unless `block_time` (seconds) is given. With `free_gas` (anvil only) the base
    fee and the gas price are 0, as on a free-gas Besu network (`zeroBaseFee`, `min-gas-price=0`):
    with `block_time` too, the chain behaves like such a network. Without `port` a free one is picked
    (and another tried if a different process grabs it first). The chain's output goes to
    `log_path` if given; otherwise the chain runs quiet.

    Raises `ConfigurationError` for `free_gas` on ganache, `PortInUseError` if the `port` asked for
    is taken; `NodeStartError` if the binary is missing or the chain does not answer within
    `startup_timeout` seconds (with the last lines of its output).
    """
    kind = ChainKind(kind)
    if free_gas and kind is not ChainKind.ANVIL:
        # ganache 7.9 has no option setting the base fee: its transactions always cost gas.
        raise ConfigurationError(f"free gas needs anvil: {kind.value} cannot run with a zero base fee")
    binary = _binary(kind)
    if port is not None and not _port_is_free(port):
        raise PortInUseError(f"cannot start {kind.value}: port {port} on {HOST} is already in use")
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        command = _command(kind, binary, chosen, accounts, chain_id, block_time, log_path is None)
        if free_gas:
            command += FREE_GAS_ANVIL
        try:
            node = _launch(kind, command, chosen, chain_id, log_path, startup_timeout)
            node.free_gas = free_gas
            return node
        except _PortTakenError as exc:
            if port is not None:
                raise PortInUseError(f"cannot start {kind.value}: port {port} on {HOST} is already in use") from exc
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def wait_for_rpc(url: str, timeout: float) -> int:
    """Return the chain id once `url` answers `eth_chainId`, polling for up to `timeout` seconds.

    Raises `ChainUnavailableError` naming the last failure if it never answers.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            return _chain_id(url, request_timeout=max(0.2, min(2.0, remaining)))
        except ChainUnavailableError as exc:
            if remaining <= 0:
                raise ChainUnavailableError(
                    f"{url} did not answer eth_chainId within {timeout:g}s: {exc}"
                ) from None
        time.sleep(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class _PortTakenError(NodeStartError):
    """Raised when another process bound the chosen port between picking and starting."""


def _launch(
    kind: ChainKind,
    command: list[str],
    port: int,
    chain_id: int,
    log_path: Path | None,
    startup_timeout: float,
) -> LocalNode:
    """Start `command` in its own process group and wait until it answers on `port`."""
    log: IO[bytes]
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
    else:
        # Quiet chains still report startup failures on stderr; keep them for the error message.
        log = tempfile.TemporaryFile(prefix=f"consentledger-{kind.value}-")
    log_start = log.tell()
    url = f"http://{HOST}:{port}"
    try:
        # A new session puts the chain in its own process group: a terminal's Ctrl-C reaches only
        # us, and stop() can signal the wrapper and anything it spawned in one call.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise NodeStartError(f"cannot run {command[0]}: {exc.strerror}") from exc
    node = LocalNode(kind, port, url, chain_id, process, log_path, log)
    atexit.register(node.stop)
    try:
        answered = _wait_until_ready(node, startup_timeout, log, log_start)
    except BaseException:
        node.stop()
        raise
    if not _listens_itself(node):
        # Another process bound the port first and answered for ours, which is about to fail on it.
        node.stop()
        raise _PortTakenError(f"another process listens on {url}: {kind.value} could not bind it")
    if answered != chain_id:
        node.stop()
        raise NodeStartError(
            f"{url} answered chain id {answered}, expected {chain_id}: another chain on the port?"
        )
    return node


def _wait_until_ready(node: LocalNode, timeout: float, log: IO[bytes], log_start: int) -> int:
    """Return the chain id once the node answers; raise `NodeStartError` if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while True:
        code = node.process.poll()
        if code is not None:
            tail = _log_tail(log, log_start)
            port_taken = any(marker in tail for marker in _PORT_IN_USE_MARKERS)
            error = _PortTakenError if port_taken else NodeStartError
            raise error(
                f"{node.kind.value} exited with code {code} before answering on {node.rpc_url}"
                + (f":\n{tail}" if tail else "")
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tail = _log_tail(log, log_start)
            raise NodeStartError(
                f"{node.kind.value} did not answer on {node.rpc_url} within {timeout:g}s"
                + (f":\n{tail}" if tail else "")
            )
        with contextlib.suppress(ChainUnavailableError):
            # Short slices so a process that dies is noticed at once.
            return wait_for_rpc(node.rpc_url, timeout=min(0.25, remaining))


def _listens_itself(node: LocalNode) -> bool:
    """Return whether the chain's own process holds the socket listening on its port (True where /proc cannot tell).

    Answering on the port is not enough: a chain of another test started on the same picked port
    answers `eth_chainId` alike. Linux lists listening sockets in /proc/net/tcp and each process's
    open sockets in /proc/PID/fd; anvil and ganache listen in the process we started.
    """
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True
    address = f"{struct.unpack('=I', socket.inet_aton(HOST))[0]:08X}:{node.port:04X}"
    listening = {fields[9] for fields in (line.split() for line in table) if fields[1] == address and fields[3] == "0A"}
    if not listening:
        return True  # closed again meanwhile: the process check in the caller's next steps decides
    try:
        held = {os.readlink(entry) for entry in Path(f"/proc/{node.process.pid}/fd").iterdir()}
    except OSError:
        return node.process.poll() is None
    return any(f"socket:[{inode}]" in held for inode in listening)


def _chain_id(url: str, *, request_timeout: float) -> int:
    """Return the answer to one `eth_chainId` request, or raise `ChainUnavailableError`."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    # No proxy: the chain is on loopback and an http_proxy setting must not intercept it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=request_timeout) as response:
            reply = json.loads(response.read())
        return int(reply["result"], 16)
    except (OSError, urllib.error.URLError) as exc:
        raise ChainUnavailableError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ChainUnavailableError(f"{url} answered garbage to eth_chainId: {exc!r}") from exc


def _binary(kind: ChainKind) -> Path:
    """Return the executable for `kind` from the project's node_modules."""
    modules = paths.node_modules()
    if kind is ChainKind.ANVIL:
        # Prefer the native binary: the npm wrapper adds a node process that exits on a signal
        # before its anvil child does.
        package = _ANVIL_PLATFORM_PACKAGES.get((platform.system(), platform.machine()))
        native = modules / "@foundry-rs" / package / "bin" / "anvil" if package else None
        if native is not None and os.access(native, os.X_OK):
            return native
    wrapper = modules / ".bin" / kind.value
    if not os.access(wrapper, os.X_OK):
        raise NodeStartError(
            f"{kind.value} not found at {wrapper}: run `make bootstrap` (npm install)"
        )
    return wrapper


def _command(
    kind: ChainKind,
    binary: Path,
    port: int,
    accounts: int,
    chain_id: int,
    block_time: float | None,
    quiet: bool,
) -> list[str]:
    """Return the argv that starts `kind` with our dev accounts on `port`."""
    if kind is ChainKind.GANACHE:
        command = [
            str(binary),
            "--server.host", HOST,
            "--server.port", str(port),
            "--wallet.mnemonic", DEV_MNEMONIC,
            "--wallet.totalAccounts", str(accounts),
            "--wallet.defaultBalance", str(DEV_BALANCE_ETH),
            "--chain.chainId", str(chain_id),
            "--chain.networkId", str(chain_id),
            "--chain.hardfork", HARDFORK,
        ]  # fmt: skip
        if block_time:  # 0 means instamine, as when omitted
            command += ["--miner.blockTime", f"{block_time:g}"]
        if quiet:
            command.append("--logging.quiet")
        return command
    command = [
        str(binary),
        "--host", HOST,
        "--port", str(port),
        "--mnemonic", DEV_MNEMONIC,
        "--accounts", str(accounts),
        "--balance", str(DEV_BALANCE_ETH),
        "--chain-id", str(chain_id),
        "--hardfork", HARDFORK,
        "--color", "never",
    ]  # fmt: skip
    if block_time:
        command += ["--block-time", f"{block_time:g}"]
    if quiet:
        command.append("--quiet")
    return command


def _port_is_free(port: int) -> bool:
    """Return whether nothing listens on 127.0.0.1:`port` (binding the way the chains do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _terminate_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Interrupt the process group led by `process`, escalate to SIGKILL, and reap it."""
    group = process.pid  # start_new_session makes the child its group's leader
    _signal_group(group, signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        process.wait()
    # Anything the leader spawned gets a moment to follow it, then is killed.
    deadline = time.monotonic() + min(timeout, 2.0)
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL)
    if _group_alive(group):
        _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _log_tail(log: IO[bytes], start: int) -> str:
    """Return the last lines the chain wrote to `log` since `start`."""
    log.flush()
    end = os.fstat(log.fileno()).st_size
    offset = max(start, end - 16_384)
    text = os.pread(log.fileno(), end - offset, offset).decode("utf-8", "replace")
    return "\n".join(text.strip().splitlines()[-_LOG_TAIL_LINES:])
