"""`make demo`'s story runs end to end on a real chain and tells the right outcome."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from consentledger.chain.node import LocalNode

pytestmark = pytest.mark.process

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
CLI = str(Path(sys.executable).parent / "consentledger")


def test_demo_story_on_the_shared_ganache_then_the_readme_commands(ganache: LocalNode, tmp_path: Path) -> None:
    """The story (ingest, refused field, consent, one access, one refusal, audit trace verified), then, while it
    serves, the README's audit commands as a new user runs them from `.demo/env`; SIGTERM stops it cleanly."""
    workdir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, str(DEMO), "--rpc", ganache.rpc_url, "--workdir", str(workdir), "--serve"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        story = _read_until(demo, "▸ serving:", timeout=300)
        env = {**os.environ, **_sourced(workdir / "env")}
        trace = _cli(env, "audit", "trace", "--subject", env["SUBJECT"], "--json")
        verified = _cli(env, "audit", "verify")
        auditor_link = _cli(env, "audit", "open", "--gateway", env["HEALTH"], "--dev-account",
                            env["AUDITOR_DEV_ACCOUNT"])
        subject_link = _cli(env, "audit", "open", "--gateway", env["TRANSPORT"], "--subject-keystore",
                            env["SUBJECT_KEYSTORE"])
        pages = [httpx.get(link.stdout.strip(), follow_redirects=True, trust_env=False, timeout=60)
                 for link in (auditor_link, subject_link)]
        staffed = _staff_commands(env, workdir)
    finally:
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, story + rest

    assert story.count("approved 2 of 3 and executed") == 3
    assert "admitted health bureau" in story and "admitted transport bureau" in story
    assert "HTTP 422 fields not on the positive list of category 'contact-trace': blood_type" in story
    assert "access seq 1 recorded" in story
    assert "'district': 'North'" in story  # the requester decrypted the custodian's record
    assert "commitment: {'district': 'North', 'visited_at': '2026-11-20'}" in story
    assert "identifying fields withheld (name, phone)" in story
    assert "refused on chain: HTTP 403 ConsentRegistryConsentExhausted" in story
    assert "transport bureau" in story and "verified" in story
    assert "`consentledger audit verify`: verified 1 records" in story and "no discrepancies" in story
    assert "gateways stopped" in rest

    [line] = json.loads(trace.stdout)
    assert (line["record"], line["seq"], line["requester_name"], line["purpose_name"]) == (
        env["RECORD"], 1, "transport bureau", "epidemic-control")
    assert verified.stdout.startswith("verified ") and "no discrepancies" in verified.stdout
    assert "audit view" in auditor_link.stderr and "subject view" in subject_link.stderr
    for page in pages:
        assert page.status_code == 200 and env["RECORD"] in page.text
    collected, accessed, traced, who, checked = staffed
    assert collected["state"] == "registered" and accessed["payload"]["district"] == "East"
    [entry] = json.loads(traced.stdout)
    assert entry["actor"] == accessed["actor"] and entry["actor"] != "0x" + "00" * 32
    assert "verified: actor" in who.stdout and "Tom Berg (analyst)" in who.stdout
    assert "Tom Berg (analyst)" in checked.stdout


def _staff_commands(env: dict[str, str], workdir: Path) -> tuple[Any, ...]:
    """The README's client example: the clerk collects, the analyst accesses, the auditor learns who acted."""
    (workdir / "trace.json").write_text(json.dumps(
        {"name": "Kim", "phone": "555-0102", "district": "East", "visited_at": "2026-11-22"}))
    collected = json.loads(_cli(env, "record", "put", "--gateway", env["HEALTH"], "--subject", env["SUBJECT"],
                                "--category", "1", "--payload-file", str(workdir / "trace.json"),
                                "--keystore", env["CLERK_KEYSTORE"]).stdout)
    consent = workdir / "consent.json"
    _cli(env, "consent", "grant", "--gateway", env["TRANSPORT"], "--grantee", env["TRANSPORT_ADDRESS"],
         "--category", "1", "--purpose", "1", "--max-uses", "1", "--subject-keystore", env["SUBJECT_KEYSTORE"],
         "--out", str(consent))
    access = _cli(env, "access", "request", "--gateway", env["TRANSPORT"], "--record", str(collected["record"]),
                  "--purpose", "1", "--consent-file", str(consent), "--keystore", env["ANALYST_KEYSTORE"])
    actor = access.stderr.split("by actor ")[1].split()[0]
    accessed = {"payload": json.loads(access.stdout), "actor": actor}
    traced = _cli(env, "audit", "trace", "--record", str(collected["record"]), "--json")
    statement = workdir / "who.json"
    who = _cli(env, "audit", "actor", "--gateway", env["TRANSPORT"], actor, "--dev-account",
               env["AUDITOR_DEV_ACCOUNT"], "--out", str(statement))
    checked = _cli(env, "audit", "check-actor", str(statement))
    return collected, accessed, traced, who, checked


def _read_until(process: subprocess.Popen[str], marker: str, *, timeout: float) -> str:
    """Return the process's output up to and including the line holding `marker` (fail if it exits first)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the demo ended before serving:\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError("the demo did not start serving in time:\n" + "".join(seen))


def _sourced(env_file: Path) -> dict[str, str]:
    """Return the variables `source env_file` would export (it holds only `export NAME=quoted` lines)."""
    variables = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            [variables[name]] = shlex.split(value)
    return variables


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `consentledger ARGS` with `env`; assert it succeeded."""
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_demo_starts_and_stops_its_own_anvil(tmp_path: Path) -> None:
    """With no --rpc the demo starts a chain itself (anvil here) and stops chain and gateways at the end."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--chain", "anvil", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chain stopped" in result.stdout and "verified" in result.stdout
    assert not _orphans(tmp_path / "demo")


def _orphans(workdir: Path) -> list[str]:
    """Return the command lines of processes still serving this demo's gateway configs."""
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if str(workdir) in line and "gateway serve" in line]
