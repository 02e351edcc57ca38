"""Gas per operation on a real ganache chain stays within the targets."""

from __future__ import annotations

import pytest

from consentledger.chain.accounts import dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.gas import TARGETS, measure_gas
from consentledger.chain.node import LocalNode

pytestmark = pytest.mark.process


def test_gas_targets_are_met_on_ganache(ganache: LocalNode) -> None:
    """requestAccess (first/repeat), grantConsent and a batch's repeat access per item stay within their targets."""
    figures = {f.operation: f for f in measure_gas(connect(ganache.rpc_url), dev_accounts(20)[10:16])}
    for operation, target in TARGETS.items():
        assert figures[operation].gas <= target, f"{operation}: {figures[operation].gas} > {target}"
    # A repeat access skips the first write of the record's head, so it must be much cheaper.
    first = figures["requestAccess (first access to a record)"].gas
    repeat = figures["requestAccess (repeat access)"].gas
    assert first - repeat > 15_000
    assert all(f.gas > 21_000 for name, f in figures.items() if "per item" not in name)
    # In a batch the transaction's 21,000 and the Consortium's cold reads are paid once, not per item.
    per_item = "requestAccessBatch of 50, per item:"
    assert figures[f"{per_item} repeat access, distinct records"].gas < repeat - 25_000
    assert figures[f"{per_item} repeat access, one record and consent"].gas < figures[
        f"{per_item} repeat access, distinct records"].gas
