"""Custodian side of collection: check the positive list, encrypt, store, register on chain."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from eth_utils import keccak, to_checksum_address

from consentledger.chain.relay import register_record_payload
from consentledger.crypto.commitment import canonical_json, new_salt
from consentledger.crypto.disclosure import record_commitment
from consentledger.crypto.vault import new_dek, record_aad, seal, wrap_dek
from consentledger.errors import PayloadValidationError
from consentledger.gateway.runtime import Gateway
from consentledger.store import StoredRecord
from consentledger.types import Category, RecordKind


def check_against_catalog(fields: Sequence[str], payload: Mapping[str, Any], category_name: str) -> None:
    """Raise PayloadValidationError naming every field that is not on the category's positive list."""
    if not payload:
        raise PayloadValidationError("the payload is empty")
    unlisted = sorted(set(payload) - set(fields))
    if unlisted:
        raise PayloadValidationError(
            f"fields not on the positive list of category {category_name!r}: {', '.join(unlisted)}"
        )


def check_aggregate(gw: Gateway, category: Category, sources: Sequence[bytes]) -> int:
    """Return how many distinct attesting subjects `sources` cover; PayloadValidationError below the category's K.

    As the chain counts them: derived and aggregate sources through their own original sources, and
    only originals their subjects attested (a custodian can register records about anyone).
    """
    if category.min_aggregate_subjects == 0:
        raise PayloadValidationError(f"category {category.name!r} allows no anonymous aggregates (K = 0)")
    originals: list[bytes] = []
    for source in sources:
        info = gw.ledger.record(source)
        originals.extend(info.derived_from if info.kind is not RecordKind.PLAIN else (source,))
    infos = [gw.ledger.record(original) for original in originals]
    subjects = {info.subject for info in infos if info.attested}
    if len(subjects) < category.min_aggregate_subjects:
        unattested = sum(1 for info in infos if not info.attested)
        silent = f" ({unattested} of {len(infos)} sources not attested by their subjects)" if unattested else ""
        raise PayloadValidationError(
            f"an anonymous aggregate of category {category.name!r} needs at least "
            f"{category.min_aggregate_subjects} distinct subjects who attested its sources; these sources cover "
            f"{len(subjects)}{silent}"
        )
    return len(subjects)


def ingest(
    gw: Gateway,
    *,
    subject: str | None,
    category_id: int,
    payload: Mapping[str, Any],
    derived_from: Sequence[str],
    idempotency_key: str | None,
    request_hash: str,
    aggregate: bool = False,
) -> StoredRecord:
    """Store `payload` encrypted under a fresh DEK and queue its registration; return the stored record.

    The record row and its chain write commit together; a retry with the same Idempotency-Key
    returns the first record. Nothing is stored when a field is not on the positive list, when
    an `aggregate` covers fewer distinct subjects than its category's K, or when the signer cannot
    pay for the registration (InsufficientFundsError).
    """
    category = gw.ledger.category(category_id)
    check_against_catalog(category.fields, payload, category.name)
    sources = [bytes.fromhex(s.removeprefix("0x")) for s in derived_from]
    if aggregate:
        check_aggregate(gw, category, sources)
    try:
        canonical = canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise PayloadValidationError(f"payload is not plain JSON: {exc}") from None
    record_id = keccak(bytes.fromhex(gw.org[2:]) + secrets.token_bytes(32))
    salt, dek = new_salt(), new_dek()
    record = StoredRecord(
        record_id="0x" + record_id.hex(),
        custodian=gw.org,  # type: ignore[arg-type]
        subject=to_checksum_address(subject) if subject else "0x" + "00" * 20,  # type: ignore[arg-type]
        category=category_id,
        ciphertext=seal(dek, canonical, record_aad(record_id, category_id)),
        wrapped_dek=wrap_dek(gw.kek, dek, record_id),
        kek_id=gw.kek_id,
        salt=salt,
        commitment=record_commitment(salt, payload),
        request_hash=request_hash,
        derived_from=tuple(derived_from),
        idempotency_key=idempotency_key,
    )
    if idempotency_key is None or gw.store.get_record_by_key(gw.org, idempotency_key) is None:
        # Refuse now what the chain would refuse later (unknown or dead source, lost role), or what
        # the signer cannot pay for, so no record is stored that could never be registered.
        gw.sender.funds.require()
        if aggregate:
            gw.ledger.check_register_aggregate(gw.sender, record_id, category_id, record.commitment, sources)
        else:
            gw.ledger.check_register_record(gw.sender, record_id, record.subject, category_id, record.commitment,
                                            sources)
    kind = "register_aggregate" if aggregate else "register_record"
    stored = gw.store.add_record(
        record, outbox_kind=kind, outbox_payload=register_record_payload(record), signer=gw.org
    )
    gw.fault("record-stored")
    gw.relay_now()
    return gw.store.get_record(stored.record_id) or stored
