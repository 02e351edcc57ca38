"""Gas per operation on a real ganache chain stays within the targets."""

from __future__ import annotations

import pytest

from consentledger.chain.accounts import dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.gas import TARGETS, GasFigure, measure_gas
from consentledger.chain.node import LocalNode

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def figures(ganache: LocalNode) -> dict[str, GasFigure]:
    """Every operation's figure, measured once on a fresh consortium on ganache."""
    return {f.operation: f for f in measure_gas(connect(ganache.rpc_url), dev_accounts(20)[10:16])}


def test_gas_targets_are_met_on_ganache(figures: dict[str, GasFigure]) -> None:
    """requestAccess (first/repeat), grantConsent and a batch's repeat access per item stay within their targets."""
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


def test_legal_basis_accesses_and_reviews_are_measured(figures: dict[str, GasFigure]) -> None:
    """Mandate and override accesses are reported beside requestAccess, with an override's review.

    A mandate access writes no consent use, so it is cheaper than a consent access; an override
    also writes its review state (one fresh slot, ~20,000) on every access, first or repeat.
    """
    gas = {name: f.gas for name, f in figures.items()}
    for kind in ("first access to a record", "repeat access"):
        assert gas[f"requestAccessUnderMandate ({kind})"] < gas[f"requestAccess ({kind})"]
        assert gas[f"requestAccessOverride ({kind})"] - gas[f"requestAccessUnderMandate ({kind})"] > 15_000
    [review] = [used for name, used in gas.items() if name.startswith("reviewOverride")]
    assert 21_000 < review < gas["requestAccess (repeat access)"]
