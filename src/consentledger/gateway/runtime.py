"""One running gateway: its keys, chain connection, store, relay and background upkeep."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consentledger.audit import Indexer
from consentledger.chain.connect import connect
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import Deployment
from consentledger.chain.relay import OutboxRelay
from consentledger.chain.sender import TransactionSender
from consentledger.crypto.keyfiles import load_kek_file, load_x25519_keyfile
from consentledger.crypto.keys import load_account, password_from_env
from consentledger.errors import ConsentLedgerError
from consentledger.gateway.membership import MembershipCache
from consentledger.settings import Settings
from consentledger.store import Store, create_schema, make_engine
from consentledger.store.custody import adopt_predecessors
from consentledger.store.sessions import PageSessions

log = logging.getLogger(__name__)

INDEXER_LOCK = "consentledger-indexer"
"""The leader lock under which one replica at a time writes the shared audit index (PostgreSQL)."""


@dataclass
class Gateway:
    """Everything a request handler needs, opened once at start-up."""

    settings: Settings
    ledger: Ledger
    store: Store
    sender: TransactionSender
    relay: OutboxRelay
    members: MembershipCache
    kek_id: str
    kek: bytes
    pseudonym_secret: bytes
    x25519: X25519PrivateKey
    peers: httpx.Client
    indexer: Indexer
    _relay_lock: threading.Lock = field(default_factory=threading.Lock)
    _index_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _upkeep: threading.Thread | None = None

    @property
    def org(self) -> str:
        """Return this gateway's organisation address (its signer)."""
        return self.sender.address

    @property
    def chain_id(self) -> int:
        """Return the chain id of the deployment."""
        return self.ledger.deployment.chain_id

    @classmethod
    def open(cls, settings: Settings) -> Gateway:
        """Load keys (password from the configured env var), connect, verify the deployment, open the store.

        The audit index lives in the store's database (its own `idx_` tables), created here if missing.
        """
        password = password_from_env(settings.password_env)
        account = load_account(settings.signer_keystore, password)
        kek_id, kek = load_kek_file(settings.kek_keyfile, password)
        _, pseudonym_secret = load_kek_file(settings.pseudonym_keyfile, password)
        x25519 = load_x25519_keyfile(settings.x25519_keyfile, password)
        ledger = Ledger(connect(settings.rpc_url), Deployment.load(settings.manifest))
        ledger.verify()
        engine = make_engine(settings.store_url)
        create_schema(engine)
        adopted = adopt_predecessors(engine, account.address, ledger.current_signer)
        if adopted:
            log.info("took over records of earlier signing keys after a rotation: %s", adopted)
        store = Store(engine)
        sender = ledger.sender(account, confirmations=settings.confirmations)
        return cls(
            settings=settings,
            ledger=ledger,
            store=store,
            sender=sender,
            relay=OutboxRelay(store, ledger, sender),
            members=MembershipCache(ledger, settings.membership_ttl),
            kek_id=kek_id,
            kek=kek,
            pseudonym_secret=pseudonym_secret,
            x25519=x25519,
            peers=httpx.Client(timeout=settings.peer_timeout, trust_env=False),
            indexer=Indexer(engine, ledger),
        )

    def relay_now(self) -> None:
        """Run one relay pass (one at a time per process; one leader among replicas)."""
        with self._relay_lock, self.store.leader_lock("consentledger-relay") as leader:
            if leader:
                self.relay.run_once()

    @contextmanager
    def index_held(self) -> Iterator[bool]:
        """Bring the audit index up to the latest block, then keep it still until the block ends.

        Yields whether this process synced it. Between replicas on PostgreSQL another one may hold
        the indexer's leader lock: then it is syncing right now and the index is read as it stands.
        """
        with self._index_lock, self.store.leader_lock(INDEXER_LOCK) as leader:
            if leader:
                self.indexer.sync()
            yield leader

    def index_now(self) -> None:
        """Sync the audit index unless a request is reading or syncing it right now (then it is fresh)."""
        if not self._index_lock.acquire(blocking=False):
            return
        try:
            with self.store.leader_lock(INDEXER_LOCK) as leader:
                if leader:
                    self.indexer.sync()
        finally:
            self._index_lock.release()

    def start_upkeep(self) -> None:
        """Finish chain writes left from before (first), then keep relaying, watching membership, indexing."""
        self.relay_now()
        self._upkeep = threading.Thread(target=self._upkeep_loop, name="gateway-upkeep", daemon=True)
        self._upkeep.start()

    def close(self) -> None:
        """Stop background work and release connections."""
        self._stop.set()
        if self._upkeep is not None:
            self._upkeep.join(timeout=10)
        self.peers.close()

    def _upkeep_loop(self) -> None:
        while not self._stop.wait(self.settings.relay_interval):
            try:
                self.relay_now()
                self.members.watch()
                self.store.purge_nonces(datetime.now(UTC))
                PageSessions(self.store.engine).purge()
                self.index_now()
            except ConsentLedgerError as exc:  # chain or store down: try again next round
                log.warning("gateway upkeep: %s", exc)
            except Exception:  # never let the upkeep thread die silently
                log.exception("gateway upkeep failed")
