"""The portal's overview of one data subject, in plain words: requests, consents, records and who looked at them.

Everything but the requests comes from this gateway's audit index, which follows the whole chain:
every member's records, consents, accesses and tombstones. Requests live at each requester's own
gateway, so the others are asked for theirs (`gateway.peers`) and any that does not answer is listed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine, or_, select

from consentledger.audit import tables as t
from consentledger.audit.lifecycle import consent_standings, live_consents, tombstones
from consentledger.audit.trace import TraceLine, trace
from consentledger.consent import consent_id, revocation_typed_data
from consentledger.errors import GatewayError
from consentledger.gateway.delegation import Delegation
from consentledger.gateway.flows import consent_requests
from consentledger.gateway.flows.portal.words import (
    RECORD_STATES,
    access_sentence,
    date_text,
    iso,
    label,
    mandate_words,
    moment_text,
    override_words,
)
from consentledger.gateway.peers import Peer, ask_all, call, peers
from consentledger.gateway.runtime import Gateway
from consentledger.types import LegalBasis, Role, TombstoneReason

MINE = "/v1/subjects/me/consent-requests"


@dataclass(frozen=True)
class Names:
    """What the index calls members, categories and purposes, to show names rather than ids."""

    members: dict[str, str]
    categories: dict[int, dict[str, Any]]
    purposes: dict[int, str]

    def org(self, address: str | None) -> dict[str, str] | None:
        """Return `{org, name}` of an organisation (its address as the name when it is unknown)."""
        if address is None:
            return None
        org = to_checksum_address(address)
        return {"org": org, "name": self.members.get(org.lower(), org)}

    def purpose(self, purpose: int) -> dict[str, Any]:
        """Return `{id, name}` of a purpose."""
        return {"id": purpose, "name": label(self.purposes.get(purpose), f"purpose {purpose}")}

    def category(self, category: int | None) -> dict[str, Any]:
        """Return `{id, name, fields, identifying_fields}` of a category."""
        known = self.categories.get(category or 0, {})
        return {"id": category, "name": label(known.get("name"), f"category {category}"),
                "fields": list(known.get("fields", [])), "identifying_fields": list(known.get("identifying", []))}


def names(engine: Engine) -> Names:
    """Return the index's names of every member, category and purpose."""
    with engine.connect() as conn:
        members = {row.address.lower(): row.name for row in conn.execute(select(t.members.c.address, t.members.c.name))}
        categories = {row.id: {"name": row.name, "fields": row.fields, "identifying": row.identifying_fields}
                      for row in conn.execute(select(t.categories))}
        purposes = {row.id: row.name for row in conn.execute(select(t.purposes.c.id, t.purposes.c.name))}
    return Names(members, categories, purposes)


def overview(gw: Gateway, subject: str, delegation: Delegation) -> dict[str, Any]:
    """Return PORTAL.md's overview of `subject`: requests here and at the peers, consents, records, erasure."""
    subject = to_checksum_address(subject)
    with gw.index_held():
        cursor = gw.indexer.cursor()
        now = cursor.timestamp or int(time.time())
        known = names(gw.store.engine)
        lines = trace(gw.store.engine, subject=subject)
        live = live_consents(gw.store.engine, subject, now)
        standings = consent_standings(gw.store.engine, [c.id for c in live], now)
        granted = _granted_at(gw.store.engine, {line.consent for line in lines
                                                 if line.consent and line.basis is LegalBasis.CONSENT})
        held = _records(gw.store.engine, subject, {line.record for line in lines})
        ended = {stone.record: stone for stone in tombstones(gw.store.engine, records=list(held))}
    bases = legal_bases(gw, lines)
    requests, unreachable = subject_requests(gw, subject, delegation, known)
    domain = gw.ledger.domain()
    consents = [{
        "id": c.id, "terms": _strings(c.consent.to_json()), "grantee": known.org(c.consent.grantee),
        "purpose": known.purpose(c.consent.purpose), "category": known.category(c.consent.category),
        "record": None if c.consent.record == bytes(32) else "0x" + c.consent.record.hex(),
        "valid_until_text": date_text(c.consent.valid_until),
        "uses_left": str(max(0, c.consent.max_uses - (standings[c.id].uses if c.id in standings else 0))),
        "identified": c.consent.identified,
        "revoke_typed_data": revocation_typed_data(consent_id(c.consent, domain), domain),
    } for c in live]
    records = [_record(record, info, [line for line in lines if line.record == record], ended.get(record), known,
                       granted, subject, bases) for record, info in held.items()]
    still_held = sum(1 for r in records if r["state"] == "held")
    return {
        "subject": subject,
        "gateway": known.org(gw.org),
        "as_of": {"block": cursor.block, "time": iso(now)},
        "requests": requests,
        "unreachable": unreachable,
        "consents": consents,
        "records": records,
        "erasure": {"possible": still_held > 0 or bool(live), "live_consents": len(live), "records_held": still_held},
    }


def subject_requests(
    gw: Gateway, subject: str, delegation: Delegation, known: Names
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Return the subject's consent requests here and at every requester peer (newest first), and the peers that
    did not answer (or answered something that is not a list of requests)."""
    here = [request_item(known, gw.org, r) for r in consent_requests.listed(gw, subject=subject)["requests"]]
    asked = [p for p in peers(gw) if p.url and Role.REQUESTER in gw.members.get(p.org).roles]

    def theirs(to: Peer) -> list[dict[str, Any]]:
        answer = call(gw, to, "GET", MINE, None, delegation)
        try:
            return [request_item(known, to.org, r) for r in answer["requests"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayError(200, "malformed_answer", f"{to.name} listed requests this gateway cannot read "
                               f"({type(exc).__name__}: {exc})") from None

    answered, failed = ask_all(gw, asked, theirs)
    shown = here + [r for _, listed in answered for r in listed]
    shown.sort(key=lambda r: r["asked_at"], reverse=True)
    return shown, [f.to_json() for f in failed]


def request_item(known: Names, gateway: str, view: dict[str, Any]) -> dict[str, Any]:
    """Return a request as the portal shows it: names, dates as dates, 64-bit values as strings."""
    created, expires = _unix(view["created_at"]), _unix(view["expires_at"])
    return {
        "gateway": known.org(gateway), "id": view["id"], "state": view["state"],
        "requester": known.org(view["requester"]), "purpose": known.purpose(int(view["purpose"])),
        "category": known.category(int(view["category"])), "record": view.get("record"),
        "valid_until": str(view["valid_until"]), "valid_until_text": date_text(int(view["valid_until"])),
        "max_uses": str(view["max_uses"]), "identified": bool(view["identified"]), "reason": view["reason"],
        "asked_at": view["created_at"], "asked_at_text": moment_text(created),
        "expires_at": view["expires_at"], "expires_at_text": moment_text(expires),
        "consent_id": view.get("consent_id"),
    }


def legal_bases(gw: Gateway, lines: Iterable[TraceLine]) -> dict[tuple[str, int], str]:
    """Return the words of each access made without consent, by (record, seq): its mandate and legal text as the
    chain view holds it, or its override's review as the chain holds it now."""
    words: dict[tuple[str, int], str] = {}
    for line in lines:
        if line.basis is LegalBasis.MANDATE and line.consent:
            mandate = int(line.consent, 16)
            words[(line.record, line.seq)] = mandate_words(mandate, gw.chain.mandate(mandate).legal_text_uri)
        elif line.basis is LegalBasis.OVERRIDE:
            state = gw.ledger.override_state(bytes.fromhex(line.record[2:]), line.seq)
            words[(line.record, line.seq)] = override_words(state.status.name.lower(), state.review_due)
    return words


def _record(record: str, info: dict[str, Any], lines: list[TraceLine], ended: Any, known: Names,
            granted: dict[str, int], subject: str, bases: dict[tuple[str, int], str]) -> dict[str, Any]:
    category = known.category(info["category"])
    shown: dict[str, Any] = {
        "id": record, "custodian": known.org(info["custodian"]), "category": category,
        "collected_at_text": date_text(info["registered_at"]), "state": "held",
        "derived": info["subject"].lower() != subject.lower(),
    }
    if ended is not None:
        state, why = RECORD_STATES.get(TombstoneReason(ended.reason), ("erased", "deleted"))
        shown.update(state=state, ended_at_text=moment_text(ended.timestamp), ended_text=why)
    shown["accesses"] = [_access(line, category, known, granted, shown["derived"], bases.get((line.record, line.seq)))
                         for line in lines]
    return shown


def _access(line: TraceLine, category: dict[str, Any], known: Names, granted: dict[str, int],
            derived: bool, basis_words: str | None) -> dict[str, Any]:
    who = known.org(line.requester) or {"org": line.requester, "name": line.requester}
    purpose = known.purpose(line.purpose)
    when = int(line.time.timestamp())
    hidden = [] if line.identified else list(category["identifying_fields"])
    return {
        "seq": line.seq, "when": iso(when), "when_text": moment_text(when), "who": who,
        "person": f"staff member (pseudonym {line.actor[:10]}…)" if line.actor else None,
        "purpose": purpose, "identified": line.identified, "hidden_fields": hidden, "consent": line.consent,
        "sentence": access_sentence(
            who=who["name"], category=category["name"], when=when, purpose=purpose["name"],
            identified=line.identified, identifying=category["identifying_fields"],
            consent_granted_at=granted.get(line.consent) if line.consent else None, derived=derived,
            basis_words=basis_words),
    }


def _records(engine: Engine, subject: str, also: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Return the subject's records (and the derived ones in `also`), oldest first, by id."""
    r = t.records.c
    query = select(t.records).where(or_(r.subject == subject, r.id.in_(sorted(also))))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(r.registered_block, r.id)).mappings().all()
    return {row["id"]: dict(row) for row in rows}


def _granted_at(engine: Engine, ids: set[str | None]) -> dict[str, int]:
    c = t.consents.c
    wanted = sorted(i for i in ids if i)
    if not wanted:
        return {}
    with engine.connect() as conn:
        return {row.id: int(row.granted_at) for row in conn.execute(
            select(c.id, c.granted_at).where(c.id.in_(wanted), c.granted_at.is_not(None)))}


def _strings(terms: dict[str, Any]) -> dict[str, Any]:
    """Return consent terms with every integer as a decimal string (what the page echoes back)."""
    return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in terms.items()}


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
