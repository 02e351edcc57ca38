"""`consentledger agency init`: a ready config and encrypted keys, never overwritten."""

from __future__ import annotations

import os
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from consentledger.chain.connect import connect
from consentledger.chain.node import LocalNode
from consentledger.crypto.keyfiles import load_kek_file, load_x25519_keyfile
from consentledger.crypto.keys import load_account
from consentledger.crypto.keyx import public_from_private
from consentledger.settings import load_settings

CLI = str(Path(sys.executable).parent / "consentledger")


def run_init(*args: str, password: str | None = "correct horse") -> subprocess.CompletedProcess[str]:
    """Run `consentledger agency init` with the key password in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "CONSENTLEDGER_KEY_PASSWORD"}
    if password is not None:
        env["CONSENTLEDGER_KEY_PASSWORD"] = password
    return subprocess.run([CLI, "agency", "init", *args], env=env, capture_output=True, text=True, timeout=60)


def test_init_writes_a_loadable_config_and_private_key_files(tmp_path: Path) -> None:
    """The config loads, paths resolve next to it, keys decrypt with the password and are 0600."""
    directory = tmp_path / "health"
    manifest = str(tmp_path / "d.json")
    result = run_init("health bureau", "--dir", str(directory), "--port", "9311", "--manifest", manifest)
    assert result.returncode == 0, result.stderr
    settings = load_settings(directory / "agency.toml")
    assert settings.name == "health bureau" and settings.port == 9311
    assert settings.public_url == "http://127.0.0.1:9311"
    assert settings.store_url == "sqlite:///" + str(directory.resolve() / "agency.db")
    for key_file in (settings.signer_keystore, settings.x25519_keyfile, settings.kek_keyfile):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    address = load_account(settings.signer_keystore, "correct horse").address
    x25519 = load_x25519_keyfile(settings.x25519_keyfile, "correct horse")
    kek_id, kek = load_kek_file(settings.kek_keyfile, "correct horse")
    assert len(kek) == 32 and kek_id
    public = public_from_private(x25519.private_bytes_raw()).hex()
    assert f"--account {address}" in result.stdout and f"--x25519 {public}" in result.stdout


def test_init_refuses_to_overwrite_an_agency(tmp_path: Path) -> None:
    """A second init in the same directory fails with one line and leaves the first keys alone."""
    directory = tmp_path / "health"
    assert run_init("health", "--dir", str(directory)).returncode == 0
    before = (directory / "signer.json").read_bytes()
    again = run_init("health", "--dir", str(directory))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (directory / "signer.json").read_bytes() == before


def test_init_without_password_names_the_variable(tmp_path: Path) -> None:
    """No password in the environment: exit non-zero naming CONSENTLEDGER_KEY_PASSWORD, no files."""
    result = run_init("health", "--dir", str(tmp_path / "health"), password=None)
    assert result.returncode != 0 and "CONSENTLEDGER_KEY_PASSWORD" in result.stderr
    assert not (tmp_path / "health" / "agency.toml").exists()


def test_environment_overrides_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONSENTLEDGER_GATEWAY_<NAME> wins over the TOML value."""
    directory = tmp_path / "health"
    assert run_init("health", "--dir", str(directory)).returncode == 0
    monkeypatch.setenv("CONSENTLEDGER_GATEWAY_MAX_BODY_BYTES", "1234")
    assert load_settings(directory / "agency.toml").max_body_bytes == 1234


@pytest.mark.process
def test_init_on_a_chain_that_charges_gas_prints_the_fund_command_which_works(
    ganache: LocalNode, tmp_path: Path
) -> None:
    """The fresh signer holds 0 wei on ganache (gas price 2 gwei): init says so and prints the exact `chain fund`
    command; run as printed it pays the signer, and an init whose signer is funded says it is enough."""
    result = run_init("health", "--dir", str(tmp_path / "health"), "--rpc", ganache.rpc_url,
                      "--manifest", str(tmp_path / "d.json"))
    assert result.returncode == 0, result.stderr
    address = load_settings(tmp_path / "health" / "agency.toml").signer_keystore
    signer = load_account(address, "correct horse").address
    assert ("funding       0 wei: the signer cannot pay for its chain writes (a write needs ≥ 0.0003 ether: "
            "150,000 gas at gas price 2 gwei); fund it with:") in result.stdout
    command = f"consentledger chain fund {signer} --amount 1ether --rpc {ganache.rpc_url} --dev-account 0"
    assert result.stdout.splitlines()[-1].strip() == command

    paid = subprocess.run([CLI, *shlex.split(command)[1:]], capture_output=True, text=True, timeout=120)
    assert paid.returncode == 0, paid.stderr
    assert connect(ganache.rpc_url).eth.get_balance(signer) == 10**18
    funded = run_init("police", "--dir", str(tmp_path / "police"), "--rpc", ganache.rpc_url, "--dev-account", "3")
    assert funded.returncode == 0, funded.stderr
    assert "funding       " in funded.stdout and ": enough (a write needs ≥ 0.0003 ether" in funded.stdout


def test_init_without_a_chain_still_names_the_fund_command(tmp_path: Path) -> None:
    """No chain answers at --rpc: init succeeds and says funding was not checked, with the command to run later."""
    rpc = "http://127.0.0.1:9"  # the discard port: nothing answers JSON-RPC there
    result = run_init("health", "--dir", str(tmp_path / "health"), "--rpc", rpc)
    assert result.returncode == 0, result.stderr
    signer = load_account(tmp_path / "health" / "signer.json", "correct horse").address
    assert "funding       not checked (chain unreachable at http://127.0.0.1:9: connection refused)" in result.stdout
    assert f"consentledger chain fund {signer} --amount 1ether --rpc {rpc} --dev-account 0 (a local chain)" \
        in result.stdout


def test_gateway_serve_on_a_taken_port_exits_2_with_one_line_before_opening_anything(tmp_path: Path) -> None:
    """Another process holds the configured port: `gateway serve` says so in one line, exit code 2 (not uvicorn's 3)."""
    directory = tmp_path / "health"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_init("health", "--dir", str(directory), "--port", str(port), "--rpc", "http://127.0.0.1:9"
                        ).returncode == 0
        env = {**os.environ, "CONSENTLEDGER_KEY_PASSWORD": "correct horse"}
        result = subprocess.run([CLI, "gateway", "serve", "--config", str(directory / "agency.toml")], env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what listens there or set another port"
    )
    assert not (directory / "agency.db").exists()  # refused before the gateway opened its store
