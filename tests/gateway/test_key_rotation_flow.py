"""Key rotation with real gateways: accesses keep working across a KEK rotation and an X25519 rotation by governance.

The agencies run on a private anvil, so rotating their keys and restarting their gateways disturbs no other test.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account

from consentledger.chain.node import ChainKind, LocalNode, start_node
from consentledger.crypto.disclosure import Disclosure
from consentledger.crypto.keyfiles import load_kek_file, load_x25519_keyfile, new_next_kek_file, next_keyfile
from consentledger.crypto.keyx import WrappedKey, access_context, unwrap
from consentledger.crypto.vault import open_sealed
from consentledger.errors import IntegrityError, NodeStartError
from consentledger.localnet import DEV_PASSWORD, PASSWORD_ENV, Agency
from consentledger.store.rotation import census
from consentledger.types import Role

from .world import DISTRICT_STATS, HEALTH, TRANSPORT, Consortium, expect, signed, start_consortium

pytestmark = pytest.mark.process

CLI = str(Path(sys.executable).parent / "consentledger")
PAYLOAD = {"district": "South", "cases": 9}


@dataclass
class Rotating:
    """Health (custodian) and transport (requester) gateways on their own chain, and one OPEN record."""

    consortium: Consortium
    chain: LocalNode
    record: str


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotating]:
    """The consortium above, with the record collected and accessed once before any rotation."""
    chain = start_node(ChainKind.ANVIL)
    try:
        members = {"health": (HEALTH, Role.CUSTODIAN), "transport": (TRANSPORT, Role.REQUESTER)}
        consortium = start_consortium(chain.rpc_url, tmp_path_factory.mktemp("rotating"), members)
        try:
            record = consortium.ingest(PAYLOAD, category=DISTRICT_STATS)
            assert expect(consortium.access(consortium.transport, record), 200)["payload"] == PAYLOAD
            yield Rotating(consortium, chain, record)
        finally:
            consortium.stop()
    finally:
        chain.stop()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `consentledger ARGS` with the agencies' key password in the environment."""
    env = {**os.environ, PASSWORD_ENV: DEV_PASSWORD}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def config(agency: Agency) -> str:
    """Return the path of `agency`'s agency.toml."""
    return str(agency.created.config)


def public(private: X25519PrivateKey) -> bytes:
    """Return the raw public key of `private`."""
    return private.public_key().public_bytes_raw()


def released_key(rotating: Rotating, access: dict[str, Any]) -> tuple[WrappedKey, bytes]:
    """Ask the custodian (as transport) for the release of `access` again; return its wrapped key and disclosure."""
    transport, record = rotating.consortium.transport, str(access["record"])
    response = signed(rotating.consortium.health, rotating.consortium.key(transport), "POST",
                      f"/v1/keys/{record}/{access['seq']}", {"block": access["block"]})
    released = expect(response, 200)
    return WrappedKey.from_json(released["wrapped_key"]), base64.b64decode(released["disclosure"])


def test_an_access_decrypts_after_the_custodian_rotates_its_kek(rotating: Rotating) -> None:
    """rotate-kek refuses while health's gateway runs; with the gateway stopped and a rotation left half done (next
    KEK written), the gateway refuses to start; rotate-kek finishes it, and the restarted gateway releases keys again:
    transport decrypts the record."""
    health = rotating.consortium.health
    kek_file = health.directory / "kek.json"
    old_id, _ = load_kek_file(kek_file, DEV_PASSWORD)

    refused = cli("keys", "rotate-kek", "--config", config(health))
    assert refused.returncode == 2 and "in use by a running gateway" in refused.stderr, refused.stderr

    health.stop()
    new_id, _ = new_next_kek_file(kek_file, DEV_PASSWORD)  # as a rotation killed right after its first step
    with pytest.raises(NodeStartError, match="half done"):
        health.start()
    health.stop()  # closes the failed start's log
    rotated = cli("keys", "rotate-kek", "--config", config(health))
    health.start()

    assert rotated.returncode == 0, rotated.stderr
    assert load_kek_file(kek_file, DEV_PASSWORD)[0] == new_id and not next_keyfile(kek_file).exists()
    assert f"rotated KEK {old_id} → {new_id}: 1 record re-wrapped" in rotated.stdout
    assert census(rotating.consortium.store(health).engine).wrapped == {new_id: 1}
    assert expect(rotating.consortium.access(rotating.consortium.transport, rotating.record), 200)["payload"] == PAYLOAD
    fresh = rotating.consortium.ingest({"district": "West", "cases": 1}, category=DISTRICT_STATS)
    assert expect(rotating.consortium.access(rotating.consortium.transport, fresh), 200)["payload"]["cases"] == 1


def test_accesses_keep_working_through_an_x25519_rotation_by_governance(rotating: Rotating) -> None:
    """Transport writes a next key (its gateway keeps running), governance registers it with the printed command, and
    from then on the custodian wraps for it alone: the old key cannot open a key released after the change, the new
    one can, and transport's running gateway decrypts throughout; --finish makes the new key current."""
    consortium, transport = rotating.consortium, rotating.consortium.transport
    keyfile = transport.directory / "x25519.pem"
    old = load_x25519_keyfile(keyfile, DEV_PASSWORD)

    begun = cli("keys", "rotate-x25519", "--config", config(transport))
    assert begun.returncode == 0, begun.stderr
    new = load_x25519_keyfile(next_keyfile(keyfile), DEV_PASSWORD)
    (command,) = [line.strip() for line in begun.stdout.splitlines() if "org propose set-keys" in line]
    assert f"--account {transport.address} --x25519 {public(new).hex()} --gateway {transport.url}" in command
    assert expect(consortium.access(transport, rotating.record), 200)["payload"] == PAYLOAD  # still the old key
    early = cli("keys", "rotate-x25519", "--config", config(transport), "--finish")
    assert early.returncode == 2 and "still registers the current X25519 key" in early.stderr, early.stderr

    manifest = str(consortium.agencies["health"].directory.parent / "deployment.json")
    governed = cli(*shlex.split(command)[1:], "--rpc", rotating.chain.rpc_url, "--manifest", manifest,
                   "--dev-account", "0")
    assert governed.returncode == 0 and "executed" in governed.stdout, governed.stderr
    assert consortium.ledger.member(transport.address).x25519_key == public(new)

    access = expect(consortium.access(transport, rotating.record), 200)
    assert access["payload"] == PAYLOAD
    wrapped, sealed = released_key(rotating, access)
    context = access_context(bytes.fromhex(rotating.record[2:]), int(access["seq"]), transport.address)
    with pytest.raises(IntegrityError):
        unwrap(old, wrapped, context)
    access_key = unwrap(new, wrapped, context)
    assert Disclosure.from_json(json.loads(open_sealed(access_key, sealed, context))).visible_payload() == PAYLOAD

    finished = cli("keys", "rotate-x25519", "--config", config(transport), "--finish")
    assert finished.returncode == 0 and "is now current" in finished.stdout, finished.stderr
    assert public(load_x25519_keyfile(keyfile, DEV_PASSWORD)) == public(new)
    assert not next_keyfile(keyfile).exists()
    assert expect(consortium.access(transport, rotating.record), 200)["payload"] == PAYLOAD
    transport.stop()
    transport.start()
    assert expect(consortium.access(transport, rotating.record), 200)["payload"] == PAYLOAD


def test_a_custodian_rotates_its_signer_through_governance_and_keeps_its_records(rotating: Rotating) -> None:
    """Health writes a new signer keystore and is told to fund it (the printed `chain fund` command pays it),
    governance moves it there with the printed command, --finish makes it current; restarted, health's gateway
    serves the record its old key registered, registers new ones with the new key, and the old key is revoked.
    (Last in this module: health's address changes.)"""
    consortium, health = rotating.consortium, rotating.consortium.health
    old = health.address
    begun = cli("keys", "rotate-signer", "--config", config(health))
    assert begun.returncode == 0, begun.stderr
    (command,) = [line.strip() for line in begun.stdout.splitlines() if "org propose rotate-signer" in line]
    new = shlex.split(command)[-1]
    early = cli("keys", "rotate-signer", "--config", config(health), "--finish")
    assert early.returncode == 2 and "has not rotated" in early.stderr, early.stderr
    # The new key holds nothing yet: rotate-signer prints the command funding it, which works as printed.
    (funding,) = [line.strip() for line in begun.stdout.splitlines() if line.strip().startswith("consentledger chain")]
    assert funding == f"consentledger chain fund {new} --amount 1ether --rpc {rotating.chain.rpc_url} --dev-account 0"
    paid = cli(*shlex.split(funding)[1:])
    assert paid.returncode == 0 and f"balance of {new}: 1 ether" in paid.stdout, paid.stderr

    manifest = str(health.directory.parent / "deployment.json")
    governed = cli(*shlex.split(command)[1:], "--rpc", rotating.chain.rpc_url, "--manifest", manifest,
                   "--dev-account", "0")
    assert governed.returncode == 0 and "executed" in governed.stdout, governed.stderr
    finished = cli("keys", "rotate-signer", "--config", config(health), "--finish")
    assert finished.returncode == 0 and f"signer {new} is now current" in finished.stdout, finished.stderr
    health.stop()
    health.start()

    assert consortium.ledger.current_signer(old) == new
    assert consortium.ledger.member(old).status.name == "REVOKED"
    assert expect(consortium.access(consortium.transport, rotating.record), 200)["payload"] == PAYLOAD
    new_key = bytes(Account.decrypt(json.loads((health.directory / "signer.json").read_text()), DEV_PASSWORD))
    body = {"subject": Account.create().address, "category": DISTRICT_STATS, "payload": {"district": "Far", "cases": 3}}
    stored = expect(signed(health, new_key, "POST", "/v1/records", body, audience=new), 201)
    assert consortium.ledger.record(bytes.fromhex(stored["record"][2:])).custodian == new
