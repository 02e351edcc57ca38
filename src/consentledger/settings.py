"""Gateway settings: one pydantic model read from an agency TOML file, overridable by environment."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from consentledger.errors import ConfigurationError
from consentledger.gateway.faults import CrashPoint

ENV_PREFIX = "CONSENTLEDGER_GATEWAY_"
RELEASE_WINDOW = 300
"""Default `release_window`: seconds after an access's block its key may be released (see the setting)."""
MAX_RELEASES = 3
"""Default `max_releases`: releases of one access's key (PROTECTED: always 1)."""
MAX_BATCH_ITEMS = 256
"""Default `max_batch_items`: items in one batch call (accesses asked for, keys released)."""
LOGS_BLOCK_RANGE = 5000
"""Default `logs_block_range`: Besu's default `--rpc-max-logs-range`, the most blocks one eth_getLogs may span."""


class Settings(BaseSettings):
    """Everything one agency gateway needs; relative paths are relative to the TOML file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    name: str = Field(description="The agency's name, as admitted to the consortium.")
    rpc_url: str = Field(description="Ethereum JSON-RPC URL of the permissioned chain.")
    manifest: Path = Field(description="Deployment manifest written by `consentledger deploy`.")
    signer_keystore: Path = Field(description="The organisation's signer key (eth-account keystore v3).")
    x25519_keyfile: Path = Field(description="The organisation's X25519 private key (encrypted).")
    kek_keyfile: Path = Field(description="The key-encryption key wrapping every record key (encrypted).")
    pseudonym_keyfile: Path = Field(
        Path("pseudonym.json"), description="The secret per-requester pseudonym keys derive from (encrypted)."
    )
    password_env: str = Field("CONSENTLEDGER_KEY_PASSWORD", description="Env var holding the key password.")
    store_url: str = Field("sqlite:///agency.db", description="SQLAlchemy URL: sqlite:///… or postgresql://…")
    host: str = Field("127.0.0.1", description="Listen address.")
    port: int = Field(9001, description="Listen port.")
    public_url: str = Field("", description="The URL other gateways use (registered on chain).")
    confirmations: int = Field(0, ge=0, description="Blocks to wait after each transaction.")
    max_pending_per_signer: int = Field(
        4, ge=1, le=1000,
        description="Most transactions of the gateway's signer broadcast and not yet mined; one more waits for a "
        "slot. Keep it below the node pool's per-sender limit (Besu's default pool takes about 5).",
    )
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0, description="Largest accepted request body.")
    membership_ttl: float = Field(5.0, ge=0, description="Seconds a member's on-chain standing is cached.")
    catalog_ttl: float = Field(
        60.0, ge=0, description="Seconds a catalog category or purpose is cached at most (its events drop it sooner).",
    )
    relay_interval: float = Field(0.5, gt=0, description="Seconds between outbox relay passes.")
    peer_timeout: float = Field(30.0, gt=0, description="Seconds to wait for another gateway.")
    page_session_ttl: int = Field(900, gt=0, le=86400, description="Seconds an audit page session lasts.")
    portal_session_ttl: int = Field(
        3600, ge=60, le=86400,
        description="Seconds a subject portal session lasts (and the gateway may act for the subject at its peers).",
    )
    portal_peer_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds the subject portal waits for another member's gateway.",
    )
    sweep_interval: float = Field(30.0, gt=0, description="Seconds between retention and sunset sweeps.")
    sweep_batch: int = Field(100, gt=0, le=10_000, description="Records shredded per database transaction.")
    allow_org_key_requests: bool = Field(
        False, description="Also accept the organisation's signer key where a registered client is expected "
        "(collect, request). Off: staff and applications sign with their own client keys and the org key "
        "never leaves the gateway; on only for local tests and benchmarks.",
    )
    batch_window: float = Field(
        0.005, ge=0, le=1.0,
        description="Seconds an access waits for others to share its transaction while a batch is on its way "
        "(group commit; a lone access never waits).",
    )
    idempotency_ttl: int = Field(
        86400, gt=0, le=30 * 86400, description="Seconds an access's Idempotency-Key is remembered for retries."
    )
    fault_injection: Literal[""] | CrashPoint = Field(
        "", description="Crash tests only: the gateway kills itself (SIGKILL) at this step (`gateway.faults`).",
    )
    release_window: int = Field(
        RELEASE_WINDOW, gt=0, le=86400,
        description="Seconds after an access's block during which the custodian releases its key.",
    )
    """Seconds after an access's block during which the custodian releases its key (default 300).

    The requester's gateway asks for the key right after the access is mined, so a release is
    normally a second old. Five minutes leave room for a few retries after a network failure (each
    waits up to `peer_timeout`, 30 s) and for clocks that drift from the chain's block timestamps,
    while an access recorded on chain stops being a standing right to the data: a later use needs
    a new access, which the chain records and counts against the consent.
    """
    release_confirmations: int = Field(
        0, ge=0, le=10_000,
        description="Blocks that must be mined on top of an access's block before the custodian releases its key.",
    )
    """Blocks mined on top of an access's block before its key is released (default 0: at once).

    0 suits instant-finality networks (Besu QBFT, as in deploy/): a mined block is final, so an
    access cannot be reorganised away. On a chain that can reorganise (a proof-of-work or
    proof-of-stake network, or a local chain driven by hand) set it to the depth past which a reorg
    is not expected (e.g. 2 for anvil or ganache used by several clients, 12+ elsewhere): until the
    access is that deep the custodian answers 425 `not_confirmed` with the depth so far and the one
    needed, and releases nothing. The default is 0 because the local chains of the tests and the
    quick start mine only on a transaction, where an access would never get deeper.
    """
    confirmation_wait: float = Field(
        60.0, ge=0, le=3600,
        description="Seconds the requester's gateway keeps asking a custodian that answers `not_confirmed` "
        "(once per new block) before passing the 425 on.",
    )
    max_releases: int = Field(
        MAX_RELEASES, gt=0, le=100,
        description="How many times one access's key is released (PROTECTED records: once, whatever this says).",
    )
    """How many times one access's key is released (default 3: the first request and two retries).

    A PROTECTED record's disclosure is for immediate use, so it is released exactly once.
    """

    max_batch_items: int = Field(
        MAX_BATCH_ITEMS, gt=0, le=10_000,
        description="Most items in one batch call (POST /v1/access/batch, POST /v1/keys/batch).",
    )
    logs_block_range: int = Field(
        LOGS_BLOCK_RANGE, gt=0,
        description="Most blocks one eth_getLogs may span on the chain's nodes (Besu --rpc-max-logs-range).",
    )
    callback_attempts: int = Field(
        8, ge=1, le=100, description="Most deliveries tried of one consent-request callback before giving up.",
    )
    callback_backoff: float = Field(
        2.0, gt=0, le=3600, description="Seconds before a failed callback is tried again (doubling each time).",
    )
    callback_backoff_max: float = Field(
        600.0, gt=0, le=86400, description="Longest wait between two tries of a callback, in seconds.",
    )
    callback_timeout: float = Field(10.0, gt=0, le=300, description="Seconds a callback receiver has to answer.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables override the TOML values passed as init arguments."""
        return env_settings, init_settings


def load_settings(path: Path) -> Settings:
    """Read an agency TOML file (env `CONSENTLEDGER_GATEWAY_*` overrides); raise ConfigurationError."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError:
        hint = "create one with `consentledger agency init`"
        raise ConfigurationError(f"gateway config {path} not found ({hint})") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"gateway config {path} is unreadable: {exc}") from None
    base = path.resolve().parent
    data.setdefault("pseudonym_keyfile", "pseudonym.json")
    for key in ("manifest", "signer_keystore", "x25519_keyfile", "kek_keyfile", "pseudonym_keyfile"):
        if key in data and not Path(data[key]).is_absolute():
            data[key] = str(base / data[key])
    url = data.setdefault("store_url", "sqlite:///agency.db")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        data["store_url"] = "sqlite:///" + str(base / url.removeprefix("sqlite:///"))
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"gateway config {path}: {problems}") from None
