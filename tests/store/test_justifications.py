"""Override justifications kept salted, and clients holding emergency beside request, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak
from sqlalchemy import Engine

from consentledger.actors import ClientRole
from consentledger.errors import PayloadValidationError
from consentledger.store.clients import Clients
from consentledger.store.justifications import MAX_JUSTIFICATION, Justifications

RECORD = "0x" + "ab" * 32
ACTOR = "0x" + "cd" * 32


def test_a_kept_justification_is_found_by_its_salted_hash_only(engine: Engine) -> None:
    """The hash is keccak256(salt ‖ text) under a fresh 32-byte salt: the same text twice hashes apart, and the
    plain text's hash finds nothing."""
    kept = Justifications(engine)
    first = kept.keep("patient unconscious", record=RECORD, purpose=1, actor=ACTOR)
    second = kept.keep("patient unconscious", record=RECORD, purpose=1, actor=ACTOR)

    found = kept.find(first.hash)

    assert found is not None and (found.text, found.salt, found.record, found.actor) == (
        "patient unconscious", first.salt, RECORD, ACTOR)
    assert first.hash == keccak(first.salt + b"patient unconscious") and len(first.salt) == 32
    assert first.hash != second.hash
    assert kept.find(keccak(text="patient unconscious")) is None


def test_a_dropped_justification_is_gone(engine: Engine) -> None:
    """What an override refused on chain leaves: nothing."""
    kept = Justifications(engine)
    refused = kept.keep("no longer needed", record=RECORD, purpose=1, actor=ACTOR)

    kept.drop(refused)

    assert kept.find(refused.hash) is None


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_JUSTIFICATION + 1)], ids=["empty", "blank", "too-long"])
def test_a_justification_that_says_nothing_or_too_much_is_refused(engine: Engine, text: str) -> None:
    """1 to MAX_JUSTIFICATION characters of text, or a PayloadValidationError."""
    with pytest.raises(PayloadValidationError, match="justification is 1 to 4096"):
        Justifications(engine).keep(text, record=RECORD, purpose=1, actor=ACTOR)


def test_a_client_holds_emergency_beside_request_and_it_is_read_back(engine: Engine) -> None:
    """The extra role is stored and read by address, by actor and in the listing; a plain requester lacks it."""
    clients = Clients(engine)
    medic = clients.add(Account.create().address, "medic", ClientRole.REQUEST, extra=[ClientRole.EMERGENCY])
    clerk = clients.add(Account.create().address, "clerk", ClientRole.REQUEST)

    read = clients.get(medic.address)
    by_actor = clients.by_actor(bytes(medic.actor))

    assert read is not None and read.holds(ClientRole.EMERGENCY) and read.holds(ClientRole.REQUEST)
    assert by_actor is not None and by_actor.extra_roles == (ClientRole.EMERGENCY,)
    assert read.role_names == "request,emergency" and read.to_json()["roles"] == ["request", "emergency"]
    assert [c.holds(ClientRole.EMERGENCY) for c in clients.all()] == [True, False]
    assert clerk.extra_roles == ()


@pytest.mark.parametrize("main, extra", [
    (ClientRole.EMERGENCY, ()), (ClientRole.COLLECT, (ClientRole.EMERGENCY,)),
    (ClientRole.REQUEST, (ClientRole.COLLECT,)),
], ids=["emergency-alone", "emergency-beside-collect", "two-main-roles"])
def test_a_role_that_cannot_be_held_so_is_refused(
    engine: Engine, main: ClientRole, extra: tuple[ClientRole, ...]
) -> None:
    """Emergency only beside request; no second main role."""
    with pytest.raises(PayloadValidationError, match="role"):
        Clients(engine).add(Account.create().address, "someone", main, extra=extra)
