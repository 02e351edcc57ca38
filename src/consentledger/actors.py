"""Who acted inside an organisation: its registered clients, their pseudonyms on chain, signed disclosures.

Each member of staff or application that uses an agency's gateway signs requests with its own key
(a *client* of that gateway, registered by the agency's administrator). The chain never sees the
client's key or name: every access entry carries the client's *actor* pseudonym,
keccak256(abi.encode(client address, salt)), with a random salt only the agency holds. To tell an
auditor who an actor is, the agency signs an `ActorDisclosure` statement with its organisation key;
the auditor checks the signature against the organisation and recomputes the pseudonym from the
disclosed address and salt (`check_statement`), so neither side has to trust the other's word.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address

from consentledger.errors import PayloadValidationError
from consentledger.types import NO_ACTOR, ActorId, Role

DOMAIN_NAME = "ConsentLedger Actor Disclosure"
DOMAIN_VERSION = "1"
STATEMENT_FIELDS = [
    {"name": "org", "type": "address"},
    {"name": "actor", "type": "bytes32"},
    {"name": "client", "type": "address"},
    {"name": "name", "type": "string"},
    {"name": "role", "type": "string"},
    {"name": "salt", "type": "bytes32"},
    {"name": "issuedAt", "type": "uint64"},
]


class ClientRole(Enum):
    """What a registered client may do at its agency's gateway."""

    COLLECT = "collect"
    """Collect records and read their metadata (the agency must hold the CUSTODIAN role)."""
    REQUEST = "request"
    """Access records of other agencies (the agency must hold the REQUESTER role)."""
    AUDIT_LIAISON = "audit-liaison"
    """The agency's own compliance officer: list its clients and disclose who an actor is."""
    EMERGENCY = "emergency"
    """Beside `request`: record emergency overrides (the agency needs EMERGENCY on chain, which the chain checks)."""

    @property
    def member_role(self) -> Role | None:
        """Return the on-chain role the agency needs for this client role (None: no chain role needed)."""
        return {ClientRole.COLLECT: Role.CUSTODIAN, ClientRole.REQUEST: Role.REQUESTER}.get(self)

    @classmethod
    def parse(cls, text: str) -> ClientRole:
        """Return the role named `text`; PayloadValidationError naming the choices otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise PayloadValidationError(f"unknown client role {text!r}: one of {choices}") from None


def new_salt() -> bytes:
    """Return a fresh random 32-byte salt for a client's pseudonym."""
    return secrets.token_bytes(32)


def actor_id(client: str, salt: bytes) -> ActorId:
    """Return the pseudonym keccak256(abi.encode(address client, bytes32 salt)) an access entry carries."""
    if len(salt) != 32:
        raise ValueError("a client's salt is 32 bytes")
    return ActorId(keccak(bytes(12) + bytes.fromhex(to_checksum_address(client)[2:]) + salt))


@dataclass(frozen=True)
class ActorStatement:
    """An organisation's statement of who one of its actors is."""

    org: str
    actor: bytes
    client: str
    name: str
    role: str
    salt: bytes
    issued_at: int

    def sign(self, private_key: bytes, chain_id: int) -> bytes:
        """Return the organisation key's EIP-712 signature over this statement."""
        signed = Account.sign_typed_data(private_key, _domain(chain_id), {"ActorDisclosure": STATEMENT_FIELDS},
                                         self._message())
        return bytes(signed.signature)

    def signer(self, signature: bytes, chain_id: int) -> str | None:
        """Return the address that signed this statement, or None if the signature is malformed."""
        signable = encode_typed_data(_domain(chain_id), {"ActorDisclosure": STATEMENT_FIELDS}, self._message())
        try:
            return str(Account.recover_message(signable, signature=signature))
        except Exception:  # eth-account raises several types for malformed signatures
            return None

    def to_json(self) -> dict[str, Any]:
        """Return the statement as JSON-ready data (hex bytes, checksummed addresses)."""
        return {"org": self.org, "actor": "0x" + self.actor.hex(), "client": self.client, "name": self.name,
                "role": self.role, "salt": "0x" + self.salt.hex(), "issued_at": self.issued_at}

    @classmethod
    def from_json(cls, data: Any) -> ActorStatement:
        """Parse `to_json` output; PayloadValidationError naming the bad field."""
        if not isinstance(data, dict):
            raise PayloadValidationError("an actor statement is a JSON object")
        try:
            org, client = str(data["org"]), str(data["client"])
            if not (is_address(org) and is_address(client)):
                raise ValueError("org and client must be addresses")
            actor = bytes.fromhex(str(data["actor"]).removeprefix("0x"))
            salt = bytes.fromhex(str(data["salt"]).removeprefix("0x"))
            if len(actor) != 32 or len(salt) != 32:
                raise ValueError("actor and salt are 32 bytes each")
            return cls(to_checksum_address(org), actor, to_checksum_address(client), str(data["name"]),
                       str(data["role"]), salt, int(data["issued_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadValidationError(f"malformed actor statement: {exc}") from None

    def _message(self) -> dict[str, Any]:
        return {"org": to_checksum_address(self.org), "actor": self.actor, "client": to_checksum_address(self.client),
                "name": self.name, "role": self.role, "salt": self.salt, "issuedAt": self.issued_at}


@dataclass(frozen=True)
class StatementVerdict:
    """Whether an actor statement holds, and why not."""

    ok: bool
    reason: str


def check_statement(
    statement: ActorStatement, signature: bytes, *, chain_id: int, org_signers: set[str]
) -> StatementVerdict:
    """Return whether `statement` names its actor truly and was signed by one of the organisation's keys.

    `org_signers` are the addresses that speak for the organisation (its signer, and after a rotation
    the keys it rotated from or to), as the caller read them from the chain.
    """
    if statement.actor == NO_ACTOR:
        return StatementVerdict(False, "the zero actor is the organisation itself, not a client")
    if actor_id(statement.client, statement.salt) != statement.actor:
        return StatementVerdict(False, "the disclosed client and salt do not hash to the actor")
    signer = statement.signer(signature, chain_id)
    if signer is None:
        return StatementVerdict(False, "the signature is malformed")
    if signer not in {to_checksum_address(a) for a in org_signers}:
        return StatementVerdict(False, f"signed by {signer}, not by the organisation {statement.org}")
    return StatementVerdict(True, f"actor {('0x' + statement.actor.hex())[:10]}… is {statement.name!r} "
                                  f"({statement.role}, key {statement.client}) of {statement.org}")


def _domain(chain_id: int) -> dict[str, Any]:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id}
