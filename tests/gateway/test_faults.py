"""The crash hook: nothing when off, a SIGKILL of this process at the armed point only."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from consentledger.gateway.faults import CRASH_POINTS, crash_at, no_fault
from consentledger.settings import Settings


def test_the_hook_of_a_gateway_without_fault_injection_does_nothing() -> None:
    """Off, the hook is the no-op function: every point passes."""
    hook = crash_at("")
    assert hook is no_fault
    for point in CRASH_POINTS:
        hook(point)


def test_an_unknown_crash_point_is_refused() -> None:
    """Arming a point no step calls is an error, not a hook that never fires."""
    with pytest.raises(ValueError, match="unknown crash point 'outbox-sent'"):
        crash_at("outbox-sent")


def test_the_setting_takes_only_known_crash_points() -> None:
    """`fault_injection` takes a crash point (or nothing) and refuses any other step."""
    required = {"name": "health", "rpc_url": "http://127.0.0.1:8545", "manifest": "deployment.json",
                "signer_keystore": "signer.json", "x25519_keyfile": "x25519.json", "kek_keyfile": "kek.json"}
    assert Settings.model_validate(required).fault_injection == ""
    assert Settings.model_validate({**required, "fault_injection": "outbox-signed"}).fault_injection == "outbox-signed"
    with pytest.raises(ValidationError, match="fault_injection"):
        Settings.model_validate({**required, "fault_injection": "outbox-sent"})


def test_an_armed_hook_kills_its_process_at_its_point_only() -> None:
    """Armed at one point, the hook passes the others and dies of SIGKILL (exit -9) at that one."""
    script = (
        "from consentledger.gateway.faults import CRASH_POINTS, crash_at\n"
        "hook = crash_at('release-logged')\n"
        "for point in CRASH_POINTS:\n"
        "    hook(point)\n"
        "    print(point, flush=True)\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert ran.returncode == -9
    at = CRASH_POINTS.index("release-logged")
    assert ran.stdout.split() == list(CRASH_POINTS[:at])
