"""README.md's agency section, run as written with bash on the README's own chain: a fresh ganache as `chain up`
starts it, after the Operators section's deployment and governance round.

The commands come from the README itself (its "Agencies" section's first two `sh` blocks), so the test fails when
the README's commands stop working, e.g. a signer that is never funded leaving its records `pending`. Only the
gateway's port is changed (9001 may be taken on a test machine).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consentledger import governance
from consentledger.chain.accounts import dev_account
from consentledger.chain.connect import connect
from consentledger.chain.deploy import deploy
from consentledger.chain.node import ChainKind, LocalNode, free_port, start_node
from consentledger.crypto.keys import keystore_address
from consentledger.types import Role, Sensitivity

pytestmark = pytest.mark.process

README = Path(__file__).resolve().parents[1] / "README.md"
CLI = str(Path(sys.executable).parent / "consentledger")
README_PORT = "9001"


def section_blocks(title: str) -> list[str]:
    """Return the `sh` code blocks of the README section whose heading is `title`, in order."""
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.DOTALL)


@pytest.fixture(scope="module")
def readme_chain() -> Iterator[LocalNode]:
    """A private ganache started as `consentledger chain up` starts it (10 dev accounts, chain id 1337)."""
    with start_node(ChainKind.GANACHE) as node:
        yield node


def operators_round(rpc_url: str, workdir: Path, gateway: str) -> None:
    """Do what the README's Operators section does before the agency section: deploy (2 of 3 admins) to
    deployment.json, admit dev account 3, add the purpose and the category (proposals 1 to 3)."""
    admins = [dev_account(i) for i in range(3)]
    ledger = deploy(connect(rpc_url), admins[0], [a.address for a in admins], 2,
                    admin_names=["ministry A", "ministry B", "ministry C"])
    ledger.deployment.save(workdir / "deployment.json")
    senders = [ledger.sender(a) for a in admins]
    for action, approver in (
        (governance.admit_member(dev_account(3).address, Role.CUSTODIAN, "health bureau", gateway_url=gateway), 1),
        (governance.add_purpose(1, "epidemic-control"), 1),
        (governance.add_category(1, "contact-trace", Sensitivity.ONE_TIME, 30 * 86400, ["name", "phone", "district"],
                                 ["name", "phone"], [1]), 2),
    ):
        proposal, executed = ledger.propose(senders[0], action)
        assert not executed and ledger.approve(senders[approver], proposal)
    ledger.close()


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` with bash, stopping at the first failing command."""
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_the_agency_section_runs_as_written_and_its_record_is_registered(readme_chain: LocalNode,
                                                                         tmp_path: Path) -> None:
    """init names the fund command, `chain fund` pays the new signer 1 ether, governance admits it (proposal 4),
    the gateway serves, the clerk is added and collects a record which is `registered` at once, then is revoked."""
    port = str(free_port())
    setup, clients = (block.replace(README_PORT, port) for block in section_blocks("Agencies: a gateway each")[:2])
    serve = [line for line in setup.splitlines() if "gateway serve" in line]
    assert len(serve) == 1, setup
    operators_round(readme_chain.rpc_url, tmp_path, f"http://127.0.0.1:{port}")
    env = {**os.environ, "CONSENTLEDGER_RPC": readme_chain.rpc_url}
    prelude = f"CL={shlex.quote(CLI)}\n"

    created = bash(prelude + setup.replace(serve[0], ""), env, tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    signer = str(keystore_address(tmp_path / "agencies" / "health" / "signer.json"))
    assert (f"  consentledger chain fund {signer} --amount 1ether --rpc {readme_chain.rpc_url} --dev-account 0"
            in created.stdout.splitlines())
    assert f"balance of {signer}: 1 ether" in created.stdout
    assert "proposal 4: executed" in created.stdout

    password = {"CONSENTLEDGER_KEY_PASSWORD": "a long passphrase"}  # exported by the README's block
    command = shlex.split(serve[0].split("#")[0].replace("$CL", CLI))
    with (tmp_path / "gateway.log").open("w") as log:
        gateway = subprocess.Popen(command, cwd=tmp_path, env={**env, **password}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ready = wait_ready(f"http://127.0.0.1:{port}", gateway)
            assert ready["funding"]["funded"] is True and ready["org"] == signer
            served = bash(prelude + clients, {**env, **password}, tmp_path)
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    assert served.returncode == 0, served.stdout + served.stderr + (tmp_path / "gateway.log").read_text()[-2000:]
    record = json.loads(served.stdout[served.stdout.index("{"):served.stdout.index("}") + 1])
    assert record["state"] == "registered", record
    assert "revoked 0x" in served.stdout and "(Ana Lima (clerk))" in served.stdout


def wait_ready(url: str, process: subprocess.Popen[bytes], attempts: int = 600) -> dict[str, Any]:
    """Return the gateway's /v1/ready answer once it serves (up to `attempts` tries, a tenth of a second apart)."""
    for _ in range(attempts):
        if process.poll() is not None:
            pytest.fail(f"the gateway exited with {process.returncode}")
        try:
            response = httpx.get(url + "/v1/ready", timeout=2, trust_env=False)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer
    pytest.fail("the gateway did not answer")
