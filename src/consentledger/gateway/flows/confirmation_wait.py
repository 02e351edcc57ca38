"""Requester side of `release_confirmations`: ask the custodian again while an access is not yet deep enough.

A custodian answers 425 `not_confirmed` for an access with fewer blocks on top of it than its
`release_confirmations`. The requester's gateway waits for the next block and asks again for just
those items, for at most `confirmation_wait` seconds; an item still not confirmed then is passed on
as the custodian's 425 (with `depth` and `needed`), so on a chain with a block interval
`POST /v1/access` answers once the access is deep enough, and never hangs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from consentledger.errors import AccessNotConfirmedError, ConsentLedgerError
from consentledger.gateway.flows.key_request import KeyRequest
from consentledger.gateway.runtime import Gateway

Answers = list[dict[str, Any] | ConsentLedgerError]
"""The custodian's answer to each request, in order: the released key, or the error it answered."""
Fetch = Callable[[Sequence[KeyRequest]], Answers]
"""Returns the custodian's answers to requests (`access.fetch_keys` for one custodian)."""

POLL_SECONDS = 0.25
"""Seconds between two reads of the latest block while waiting for a new one."""



def until_confirmed(gw: Gateway, fetch: Fetch, requests: Sequence[KeyRequest]) -> Answers:
    """Return `fetch(requests)`, with each `not_confirmed` item asked again after each new block, for a bounded time.

    The bound is the `confirmation_wait` setting (seconds); a PeerError of a later ask (the
    custodian gone meanwhile) becomes the answer of the items it concerned.
    """
    answers = list(fetch(requests))
    deadline = time.monotonic() + gw.settings.confirmation_wait
    while True:
        waiting = [at for at, answer in enumerate(answers) if isinstance(answer, AccessNotConfirmedError)]
        if not waiting or not _next_block(gw, deadline):
            return answers
        try:
            again = fetch([requests[at] for at in waiting])
        except ConsentLedgerError as exc:
            again = [exc] * len(waiting)
        for at, answer in zip(waiting, again, strict=True):
            answers[at] = answer


def _next_block(gw: Gateway, deadline: float) -> bool:
    """Return True once a block later than the one seen now is mined; False if `deadline` comes first."""
    seen = gw.ledger.latest_block()[0]
    while time.monotonic() < deadline:
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        if gw.ledger.latest_block()[0] > seen:
            return True
    return False
