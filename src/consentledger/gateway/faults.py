"""Crash points for the crash tests: a gateway started with `fault_injection` set dies (SIGKILL) at that step.

Off unless a test sets the setting; no error handling, no cleanup, exactly like a power cut. Off, the
hook is `no_fault`, a function that does nothing, so a production gateway pays one call per step.

The points, in the order a request meets them (`tests/gateway/test_crash_matrix.py` kills each):

Collection (custodian, POST /v1/records), through the outbox relay (which also sends tombstones and
revocations, so a gateway armed at an `outbox-*` point dies at the first of those too):
- `record-stored`: the record (ciphertext) and its outbox row committed, nothing signed.
- `outbox-signed`: the registration signed and saved in its outbox row (status sent), not broadcast.
- `outbox-broadcast`: broadcast, its receipt not yet seen.
- `outbox-mined`: its receipt seen (the record registered on chain), the row not yet marked done.
- `outbox-done`: the row marked done and the record registered in the store, the client not answered.

Consent relay (requester, POST /v1/consents), a direct transaction:
- `consent-signed`: `grantConsent` signed, not broadcast.
- `consent-broadcast`: broadcast, its receipt not yet seen.

Recording an access (requester, POST /v1/access and its batch form; group-committed):
- `access-signed`: the batch signed and saved under its Idempotency-Keys, not broadcast.
- `access-broadcast`: broadcast, not mined.
- `access-mined`: mined, not answered.
- `access-part-disclosed`: mid-batch: the keys of one custodian's part of a call fetched and opened,
  other parts still to fetch.

Key release (custodian, POST /v1/keys/batch and the single form):
- `release-sealed`: every release of the call checked and sealed, none logged, nothing answered.
- `release-logged`: the releases committed to the release log, the answer not sent.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Literal, get_args

CrashPoint = Literal[
    "record-stored", "outbox-signed", "outbox-broadcast", "outbox-mined", "outbox-done",
    "consent-signed", "consent-broadcast",
    "access-signed", "access-broadcast", "access-mined", "access-part-disclosed",
    "release-sealed", "release-logged",
]
"""A step at which an armed gateway kills itself (see the module docstring for each)."""

CRASH_POINTS: tuple[CrashPoint, ...] = get_args(CrashPoint)
"""Every crash point, in the order a request meets them."""

Fault = Callable[[str], None]
"""The hook a gateway calls with the name of each crash point it passes."""


def no_fault(point: str) -> None:
    """Return at once: the hook of a gateway with fault injection off."""


def crash_at(armed: str) -> Fault:
    """Return the hook the gateway calls at each crash point; it kills this process at `armed` ("": `no_fault`)."""
    if not armed:
        return no_fault
    if armed not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {armed!r}; one of {', '.join(CRASH_POINTS)}")

    def reached(point: str) -> None:
        if point == armed:
            os.kill(os.getpid(), signal.SIGKILL)

    return reached
