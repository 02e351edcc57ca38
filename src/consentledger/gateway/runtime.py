"""One running gateway: its keys, chain connection, store, relay and background upkeep."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from consentledger.audit import Indexer
from consentledger.audit.indexer import BATCH_BLOCKS
from consentledger.chain.batch import MAX_BATCH
from consentledger.chain.connect import connect
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import Deployment
from consentledger.chain.relay import OutboxRelay
from consentledger.chain.sender import TransactionSender
from consentledger.chain.shared_nonces import replica_nonces
from consentledger.crypto.files import FileLock
from consentledger.crypto.keyfiles import load_x25519_keys
from consentledger.crypto.keys import load_account, password_from_env
from consentledger.gateway.batcher import AccessBatcher
from consentledger.gateway.chainview import ChainView
from consentledger.gateway.disclosures import DisclosureBatcher
from consentledger.gateway.faults import Fault, crash_at, no_fault
from consentledger.gateway.keyring import open_agency_keys
from consentledger.gateway.membership import MembershipCache
from consentledger.settings import Settings
from consentledger.signing import sign_request
from consentledger.store import Store, create_schema, make_engine
from consentledger.store.access_keys import AccessKeys
from consentledger.store.clients import Clients
from consentledger.store.custody import adopt_predecessors
from consentledger.store.justifications import Justifications
from consentledger.store.rotation import require_one_kek

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
    clients: Clients
    chain: ChainView  # what this gateway has read from the chain (`members` among it), followed by events
    x25519_next: X25519PrivateKey | None = None  # during an X25519 rotation: the key governance is switching to
    key_lock: FileLock | None = None  # a shared lock on the KEK file, so no KEK rotation runs under this gateway
    _relay_lock: threading.Lock = field(default_factory=threading.Lock)
    _index_lock: threading.Lock = field(default_factory=threading.Lock)
    sweep_lock: threading.Lock = field(default_factory=threading.Lock)  # one sweep at a time in this process
    stop: threading.Event = field(default_factory=threading.Event)  # set on close: background work ends
    upkeep: threading.Thread | None = None  # the background loop (`gateway.upkeep`), once started
    access_keys: AccessKeys = field(init=False)  # accesses asked with an Idempotency-Key, for retries
    justifications: Justifications = field(init=False)  # this agency's emergency overrides' justifications
    batcher: AccessBatcher = field(init=False)  # group commit of this gateway's accesses (started in __post_init__)
    disclosures: DisclosureBatcher | None = None  # group fetch of disclosures (flows.access starts it)
    fault: Fault = no_fault  # crash tests only: called at each crash point (`gateway.faults`)

    def __post_init__(self) -> None:
        self.access_keys = AccessKeys(self.store.engine)
        self.justifications = Justifications(self.store.engine)
        self.batcher = AccessBatcher(
            self.ledger, self.sender, window=self.settings.batch_window,
            max_items=min(self.settings.max_batch_items, MAX_BATCH),
            max_in_flight=self.settings.max_pending_per_signer,
            sources_of=lambda record: len(self.chain.record(record).derived_from), keys=self.access_keys,
            fault=self.fault,
        )

    @property
    def org(self) -> str:
        """Return this gateway's organisation address (its signer)."""
        return self.sender.address

    def signed_headers(self, *, audience: str, method: str, path: str, body: bytes) -> dict[str, str]:
        """Return the headers of a request signed by this organisation for the gateway of org `audience`."""
        signature = sign_request(self.sender.account.key, chain_id=self.chain_id, audience=audience, method=method,
                                 path=path, body=body, now=int(time.time()))
        return {**signature.headers(), "Content-Type": "application/json"}

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
        keys = open_agency_keys(settings, password)  # refuses to start while a KEK rotation is running or half done
        ledger = Ledger(connect(settings.rpc_url), Deployment.load(settings.manifest))
        ledger.verify()
        engine = make_engine(settings.store_url)
        create_schema(engine)
        require_one_kek(engine, keys.kek_id)
        adopted = adopt_predecessors(engine, account.address, ledger.current_signer)
        if adopted:
            log.info("took over records of earlier signing keys after a rotation: %s", adopted)
        store = Store(engine)
        sender = ledger.sender(
            account, confirmations=settings.confirmations, max_pending=settings.max_pending_per_signer,
            nonces=replica_nonces(engine, ledger.w3),  # replicas on PostgreSQL share one signer's nonces
        )
        members = MembershipCache(ledger, settings.membership_ttl)
        fault = crash_at(settings.fault_injection)
        return cls(
            settings=settings,
            ledger=ledger,
            store=store,
            sender=sender,
            relay=OutboxRelay(store, ledger, sender, pipeline=settings.max_pending_per_signer, fault=fault),
            members=members,
            kek_id=keys.kek_id,
            kek=keys.kek,
            pseudonym_secret=keys.pseudonym_secret,
            x25519=keys.x25519,
            x25519_next=keys.x25519_next,
            key_lock=keys.lock,
            peers=httpx.Client(timeout=settings.peer_timeout, trust_env=False),
            # Both read the chain in ranges the node serves: a wider one is refused (Besu), and refused again.
            indexer=Indexer(engine, ledger, batch_blocks=min(BATCH_BLOCKS, settings.logs_block_range)),
            clients=Clients(engine),
            chain=ChainView(ledger, members, catalog_ttl=settings.catalog_ttl, log_range=settings.logs_block_range),
            fault=fault,
        )

    def relay_now(self) -> None:
        """Run one relay pass (one at a time per process; one leader among replicas)."""
        with self._relay_lock, self.store.leader_lock("consentledger-relay") as leader:
            if leader:
                self.relay.run_once()

    def x25519_keys(self, *, reload: bool = False) -> tuple[X25519PrivateKey, ...]:
        """Return the X25519 keys a released key may be wrapped for: the current one, then the next (mid-rotation).

        With `reload` the key files are read again first, so an X25519 rotation begun or finished
        while the gateway runs is picked up without a restart.
        """
        if reload:
            self.x25519, self.x25519_next = load_x25519_keys(
                self.settings.x25519_keyfile, password_from_env(self.settings.password_env)
            )
        current, successor = self.x25519, self.x25519_next
        return (current,) if successor is None else (current, successor)

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

    def close(self) -> None:
        """Stop background work and release connections."""
        self.stop.set()
        self.batcher.close()
        self.access_keys.close()
        if self.disclosures is not None:
            self.disclosures.close()
        if self.upkeep is not None:
            self.upkeep.join(timeout=10)
        self.peers.close()
        self.ledger.close()
        if self.key_lock is not None:
            self.key_lock.release()
