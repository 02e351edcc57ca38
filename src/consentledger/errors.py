"""Every error consentledger raises, with one HTTP status and one CLI exit code each."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any


class ConsentLedgerError(Exception):
    """Root of every error consentledger raises on purpose."""

    http_status: int = 500
    exit_code: int = 1
    code: str = "internal_error"

    def fields(self) -> dict[str, Any]:
        """Return the JSON fields a gateway adds to its refusal beside `error` and `detail` (none here)."""
        return {}


class ConfigurationError(ConsentLedgerError):
    """Raised when a setting, file or argument is missing or malformed."""

    http_status, exit_code, code = 500, 2, "configuration_error"


class NetworkConfigError(ConfigurationError):
    """Raised when a Besu network directory is incomplete or inconsistent (genesis, node configs, keys, allowlists)."""

    http_status, exit_code, code = 500, 2, "network_config_error"


class PortInUseError(ConfigurationError):
    """Raised when the port a chain or gateway is told to listen on is taken by another process."""

    http_status, exit_code, code = 500, 2, "port_in_use"


class CompilationError(ConsentLedgerError):
    """Raised when the Solidity compiler is missing or rejects the contracts."""

    http_status, exit_code, code = 500, 3, "compilation_error"


class ChainUnavailableError(ConsentLedgerError):
    """Raised when the JSON-RPC endpoint cannot be reached or answers garbage."""

    http_status, exit_code, code = 503, 4, "chain_unavailable"


class NodeStartError(ConsentLedgerError):
    """Raised when a local chain process (ganache/anvil) does not come up."""

    http_status, exit_code, code = 503, 4, "node_start_failed"


class ContractRevertError(ConsentLedgerError):
    """Raised when a contract call reverts; `rule` names the custom error that fired."""

    http_status, exit_code, code = 403, 5, "rule_violated"

    def __init__(self, rule: str, args: tuple[object, ...] = (), detail: str | None = None, *,
                 arg_names: Sequence[str] = ()) -> None:
        self.rule = rule
        self.rule_args = args
        self.arg_names = tuple(arg_names)
        super().__init__(detail or _call(rule, args, self.arg_names))


def _call(rule: str, args: tuple[object, ...], names: tuple[str, ...]) -> str:
    """Return `Rule(name=value, ...)`: enums by name, strings quoted, names where the ABI gives them."""
    if not args:
        return rule
    shown = [_value(v) for v in args]
    if len(names) == len(shown):
        shown = [f"{n}={v}" for n, v in zip(names, shown, strict=True)]
    return f"{rule}({', '.join(shown)})"


def _value(value: object) -> str:
    if isinstance(value, Enum):  # an IntFlag of several roles is named "CUSTODIAN|REQUESTER"
        return value.name or str(value.value)
    if isinstance(value, str) and not value.startswith("0x"):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return str(value)


class TransactionFailedError(ConsentLedgerError):
    """Raised when a transaction is not mined or fails without a decodable reason."""

    http_status, exit_code, code = 502, 5, "transaction_failed"


class ManifestError(ConsentLedgerError):
    """Raised when a deployment manifest is missing, malformed or does not match the chain."""

    http_status, exit_code, code = 500, 6, "manifest_error"


class KeystoreError(ConsentLedgerError):
    """Raised when a keystore file cannot be read, written or decrypted."""

    http_status, exit_code, code = 500, 7, "keystore_error"


class NotFoundError(ConsentLedgerError):
    """Raised when a named member, category, purpose, record or proposal does not exist."""

    http_status, exit_code, code = 404, 8, "not_found"


class AuthenticationError(ConsentLedgerError):
    """Raised when a request is unsigned, badly signed, or outside the clock window."""

    http_status, exit_code, code = 401, 10, "unauthenticated"


class AuthorizationError(ConsentLedgerError):
    """Raised when an authenticated caller lacks the role, standing or ownership an action needs."""

    http_status, exit_code, code = 403, 11, "forbidden"


class ReplayError(ConsentLedgerError):
    """Raised when a signed request's nonce was already used."""

    http_status, exit_code, code = 409, 12, "replayed_request"


class PayloadValidationError(ConsentLedgerError):
    """Raised when a payload breaks the catalog (fields not on the positive list) or is malformed."""

    http_status, exit_code, code = 422, 13, "invalid_payload"


class PayloadTooLargeError(ConsentLedgerError):
    """Raised when a request body exceeds the configured limit."""

    http_status, exit_code, code = 413, 14, "payload_too_large"


class IntegrityError(ConsentLedgerError):
    """Raised when a ciphertext, wrapped key or commitment fails verification."""

    http_status, exit_code, code = 502, 9, "integrity_error"


class ReceiptInvalidError(IntegrityError):
    """Raised when an access receipt does not prove its access (malformed, or a check fails: the reason says which)."""

    http_status, exit_code, code = 422, 9, "receipt_invalid"


class IdempotencyConflictError(ConsentLedgerError):
    """Raised when an Idempotency-Key is reused for a request with a different body."""

    http_status, exit_code, code = 409, 12, "idempotency_conflict"


class RecordExistsError(ConsentLedgerError):
    """Raised when a record id is already stored (by any request, not a retry of this one)."""

    http_status, exit_code, code = 409, 12, "record_exists"


class ClientExistsError(ConsentLedgerError):
    """Raised when a key is registered as a gateway client a second time (keys are never reused)."""

    http_status, exit_code, code = 409, 12, "client_exists"


class TransactionNotMinedError(TransactionFailedError):
    """Raised when a sent transaction has no receipt (or too few confirmations) when the wait ends."""

    http_status, exit_code, code = 504, 5, "transaction_not_mined"


class SignerBusyError(TransactionFailedError):
    """Raised when a signer keeps its most pending transactions for too long to send one more (nothing was sent)."""

    http_status, exit_code, code = 503, 5, "signer_busy"


class GatewayError(ConsentLedgerError):
    """Raised when a gateway answers with a non-2xx status or a body that is not the agreed JSON."""

    http_status, exit_code, code = 502, 15, "gateway_error"

    def __init__(self, status: int, code: str, detail: str, rule: str | None = None) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.rule = rule  # the contract rule that failed, when the gateway names one
        super().__init__(f"HTTP {status} {code}: {detail}")


class GatewayUnavailableError(ConsentLedgerError):
    """Raised when a gateway cannot be reached or does not answer in time."""

    http_status, exit_code, code = 503, 16, "gateway_unavailable"

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach gateway at {url}: {reason}")


class PeerError(ConsentLedgerError):
    """Raised when the custodian's gateway refuses a key release or cannot be reached."""

    http_status, exit_code, code = 502, 17, "custodian_unavailable"


class DisclosurePendingError(PeerError):
    """Raised when an access is on chain but its custodian did not give its disclosure (resumable, not re-recorded)."""

    http_status, exit_code, code = 502, 17, "custodian_unavailable"

    def __init__(self, detail: str, *, record: str, seq: int, block: int, tx: str) -> None:
        self.record = record
        self.seq = seq
        self.block = block
        self.tx = tx
        super().__init__(detail)

    def fields(self) -> dict[str, Any]:
        """Return the access on chain (record, seq, block, tx) that a retry or `POST /v1/access/resume` answers."""
        return {"on_chain": True, "record": self.record, "seq": self.seq, "block": self.block, "tx": self.tx}


class IndexMismatchError(ConsentLedgerError):
    """Raised when an audit index is empty, or holds another deployment's events than the one named."""

    http_status, exit_code, code = 409, 18, "index_mismatch"


class RecordDestroyedError(ConsentLedgerError):
    """Raised when a record was crypto-shredded or tombstoned, so neither it nor its key exists any more."""

    http_status, exit_code, code = 410, 19, "record_destroyed"

    def __init__(self, record: str, reason: str, detail: str, tombstone: dict[str, Any] | None = None) -> None:
        self.record = record
        self.reason = reason
        self.tombstone = tombstone
        super().__init__(detail)

    def fields(self) -> dict[str, Any]:
        """Return the record, why it was destroyed and its on-chain tombstone (status, tx) as far as known."""
        return {"record": self.record, "reason": self.reason, "tombstone": self.tombstone}


class UncoveredConsentsError(ConsentLedgerError):
    """Raised when an erasure request lacks a signed revocation for some live consent of the subject."""

    http_status, exit_code, code = 422, 20, "consents_not_revoked"

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "sign a revocation for every live consent (GET /v1/subjects/me/consents); missing: " + ", ".join(missing)
        )

    def fields(self) -> dict[str, Any]:
        """Return the ids of the live consents the request did not revoke."""
        return {"missing": self.missing}


class InvalidAttestationError(ConsentLedgerError):
    """Raised when a record attestation is not a valid low-s signature by the record's subject over its terms."""

    http_status, exit_code, code = 422, 21, "invalid_attestation"


class ReleaseRefusedError(ConsentLedgerError):
    """Raised when a custodian refuses to release an access's key: consent gone, window closed or count spent."""

    http_status, exit_code, code = 403, 22, "release_refused"

    def __init__(self, reason: str, detail: str, *, record: str | None = None, seq: int | None = None) -> None:
        self.reason = reason
        self.record = record
        self.seq = seq
        super().__init__(detail)

    def fields(self) -> dict[str, Any]:
        """Return why (e.g. consent_revoked, window_closed, limit_reached) and which access it concerns."""
        return {"reason": self.reason, "record": self.record, "seq": self.seq}


class InvalidSignatureError(PayloadValidationError):
    """Raised when a subject's consent or revocation signature is one the contract would refuse."""

    http_status, exit_code, code = 422, 13, "invalid_signature"

    def __init__(self, consent: str, what: str, problem: str) -> None:
        self.consent = consent
        self.problem = problem
        super().__init__(f"the {what} of consent {consent} is refused: {problem}")

    def fields(self) -> dict[str, Any]:
        """Return the consent whose signature is bad, why, and the contract rule it would break."""
        return {"consent": self.consent, "problem": self.problem, "rule": "ConsentRegistryInvalidSignature"}


class ErasureIncompleteError(ConsentLedgerError):
    """Raised when an erasure's tombstone or consent revocation failed on chain, so part of it did not take effect."""

    http_status, exit_code, code = 502, 23, "erasure_incomplete"


class InsufficientFundsError(TransactionFailedError):
    """Raised when an account cannot pay for the gas (and value) of a transaction it must send (nothing was sent)."""

    http_status, exit_code, code = 503, 24, "insufficient_funds"

    def __init__(self, detail: str, *, account: str, balance: int, needed: int, gas_price: int,
                 fund_command: str | None = None) -> None:
        self.account = account
        self.balance = balance
        self.needed = needed
        self.gas_price = gas_price
        self.fund_command = fund_command
        super().__init__(detail)

    def fields(self) -> dict[str, Any]:
        """Return the account, its balance, what it needs at which gas price (wei) and the command that funds it."""
        return {"account": self.account, "balance": str(self.balance), "needed": str(self.needed),
                "gas_price": str(self.gas_price), "fund_command": self.fund_command}


class ConsentRequestAnsweredError(ConsentLedgerError):
    """Raised when a consent request is answered (granted or denied) a second time."""

    http_status, exit_code, code = 409, 12, "request_answered"


class ConsentRequestExpiredError(ConsentLedgerError):
    """Raised when a consent request is answered after it expired unanswered."""

    http_status, exit_code, code = 410, 12, "request_expired"


class PeerRefusedError(GatewayError):
    """Raised when another member's gateway refuses what this gateway forwarded for a data subject."""

    http_status, exit_code, code = 502, 15, "peer_refused"

    def __init__(self, peer: str, status: int, code: str, detail: str, rule: str | None = None) -> None:
        super().__init__(status, code, f"the gateway of {peer} refused: {detail}", rule)
        # Its client error (422 wider than asked, 409 answered, 410 expired ...) is the subject's to read as such.
        self.http_status = status if 400 <= status < 500 else 502

    def __str__(self) -> str:
        return self.detail


class AccessNotConfirmedError(ConsentLedgerError):
    """Raised when a custodian will not yet release an access's key: its block is not `release_confirmations` deep."""

    http_status, exit_code, code = 425, 25, "not_confirmed"

    def __init__(self, record: str, seq: int, *, block: int, depth: int, needed: int) -> None:
        self.record = record
        self.seq = seq
        self.block = block
        self.depth = depth
        self.needed = needed
        super().__init__(
            f"access {seq} to record {record} (block {block}) has {depth} block(s) on top of it; its key is "
            f"released once it has {needed} (ask again after {needed - depth} more block(s))"
        )

    def fields(self) -> dict[str, Any]:
        """Return the access (record, seq, block), the blocks mined on top of it so far and the number needed."""
        return {"record": self.record, "seq": self.seq, "block": self.block, "depth": self.depth, "needed": self.needed}
