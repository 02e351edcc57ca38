"""Crash points for the crash tests: a gateway started with `fault_injection` set dies (SIGKILL) at that step.

Off unless a test sets the setting; no error handling, no cleanup, exactly like a power cut.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

CRASH_POINTS = ("access-signed", "access-broadcast", "access-mined")
"""Steps of recording an access: batch signed and saved (not broadcast), broadcast (not mined), mined (not answered)."""


def crash_at(armed: str) -> Callable[[str], None]:
    """Return the hook the gateway calls at each crash point; it kills this process at `armed` ("" never)."""

    def reached(point: str) -> None:
        if armed and point == armed:
            os.kill(os.getpid(), signal.SIGKILL)

    return reached
