"""The gateway's background work: relay queued chain writes, follow the chain (membership among it), index, sweep,
deliver consent-request callbacks."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from consentledger.errors import ConsentLedgerError
from consentledger.gateway.flows.follow import TombstoneFollower
from consentledger.gateway.flows.request_callbacks import CallbackCourier
from consentledger.gateway.flows.sweep import sweep_now
from consentledger.gateway.runtime import Gateway
from consentledger.store.portal_sessions import PortalSessions
from consentledger.store.sessions import PageSessions

log = logging.getLogger(__name__)


def start_upkeep(gw: Gateway) -> None:
    """Finish chain writes left from before (first), then keep the upkeep loop running until `gw.close()`."""
    gw.relay_now()
    gw.upkeep = threading.Thread(target=_loop, args=(gw,), name="gateway-upkeep", daemon=True)
    gw.upkeep.start()


def upkeep_once(gw: Gateway, *, sweep: bool, follower: TombstoneFollower | None = None,
                courier: CallbackCourier | None = None) -> None:
    """Run one round: relay, chain view, expired nonces and sessions, index, follow tombstones, start due callbacks;
    with `sweep` a sweep."""
    gw.relay_now()
    gw.chain.refresh()  # membership, catalog, tombstone and consent events
    gw.store.purge_nonces(datetime.now(UTC))
    PageSessions(gw.store.engine).purge()
    PortalSessions(gw.store.engine).purge()
    gw.access_keys.prune(datetime.now(UTC) - timedelta(seconds=gw.settings.idempotency_ttl))
    gw.index_now()
    (follower or TombstoneFollower(gw)).run()
    (courier or CallbackCourier(gw)).run()
    if sweep:
        sweep_now(gw)


def _loop(gw: Gateway) -> None:
    next_sweep = 0.0
    follower, courier = TombstoneFollower(gw), CallbackCourier(gw)
    while not gw.stop.wait(gw.settings.relay_interval):
        try:
            due = time.monotonic() >= next_sweep
            if due:
                next_sweep = time.monotonic() + gw.settings.sweep_interval
            upkeep_once(gw, sweep=due, follower=follower, courier=courier)
        except ConsentLedgerError as exc:  # chain or store down: try again next round
            log.warning("gateway upkeep: %s", exc)
        except Exception:  # never let the upkeep thread die silently
            log.exception("gateway upkeep failed")
