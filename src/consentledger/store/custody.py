"""Records kept under an organisation's earlier signing keys, taken over after a signer rotation.

On chain a record keeps the custodian address that registered it; the Consortium knows which signer
that address rotated to. The gateway's store follows: at start-up, records and unsigned chain
writes of a predecessor key become the current signer's, so every check of `custodian == org`
keeps holding.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select, update

from consentledger.store.tables import outbox, records


def adopt_predecessors(engine: Engine, org: str, current_signer: Callable[[str], str]) -> dict[str, int]:
    """Move records (and not yet signed outbox rows) of every custodian key that rotated to `org` onto `org`.

    Returns how many records each adopted predecessor held. Rows already signed by an old key are
    left for the relay to settle (the chain refuses a revoked signer's new writes).
    """
    with engine.connect() as conn:
        others = conn.execute(select(records.c.custodian).where(records.c.custodian != org).distinct()).scalars().all()
    adopted: dict[str, int] = {}
    for previous in others:
        if current_signer(previous) != org:
            continue
        with engine.begin() as conn:
            adopted[previous] = conn.execute(
                update(records).where(records.c.custodian == previous).values(custodian=org)
            ).rowcount
            conn.execute(
                update(outbox).where(outbox.c.signer == previous, outbox.c.raw_tx.is_(None)).values(signer=org)
            )
    return adopted
