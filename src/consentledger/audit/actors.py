"""An auditor's check of an agency's statement naming who acted behind an actor pseudonym."""

from __future__ import annotations

from typing import Any

from consentledger.actors import ActorStatement, StatementVerdict, check_statement
from consentledger.chain.ledger import Ledger
from consentledger.errors import PayloadValidationError
from consentledger.types import MemberStatus


def check_disclosure(ledger: Ledger, answer: dict[str, Any]) -> tuple[ActorStatement, StatementVerdict]:
    """Return the statement in `answer` ({statement, signature}) and whether it holds against the chain.

    It holds when the disclosed client and salt hash to the actor and the statement is signed by the
    key of the organisation it names, which the Consortium knows as a member (any standing: a
    suspended agency's past actors can still be disclosed).
    """
    statement = ActorStatement.from_json(answer.get("statement"))
    try:
        signature = bytes.fromhex(str(answer.get("signature", "")).removeprefix("0x"))
    except ValueError:
        raise PayloadValidationError("the statement's signature is not hex") from None
    member = ledger.member(statement.org)
    if member.status is MemberStatus.NONE:
        return statement, StatementVerdict(False, f"{statement.org} is not a member of the consortium")
    return statement, check_statement(statement, signature, chain_id=ledger.deployment.chain_id,
                                      org_signers={member.address})
