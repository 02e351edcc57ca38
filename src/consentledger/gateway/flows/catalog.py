"""The positive list as this gateway's chain view has it, and the check of a consent's category and purpose.

Relaying a consent (`flows.consents`) and filing a consent request (`flows.consent_requests`) both
refuse terms no access could use, with `Catalog.refusal` (the client runs the same check before the
subject signs). A refusal is judged again after a refresh of the chain view, so a category or
purpose added by governance a moment ago, or a sunset just changed, is never refused from an old
read. The clock is the latest block's timestamp (see `consentledger.catalog`).
"""

from __future__ import annotations

from consentledger.catalog import Catalog
from consentledger.gateway.runtime import Gateway


def current_catalog(gw: Gateway) -> Catalog:
    """Return the positive list as of the latest block (the chain view is refreshed first)."""
    gw.chain.refresh()
    return gw.chain.catalog()


def check_use(gw: Gateway, category_id: int, purpose_id: int) -> None:
    """Return if a consent for (`category_id`, `purpose_id`) could be used by an access.

    Raises PayloadValidationError (422) for a category or purpose not in the catalog, a purpose the
    category does not allow, or one past its sunset at the latest block, naming what is allowed.
    """
    if gw.chain.catalog().refusal(category_id, purpose_id) is not None:
        current_catalog(gw).check_use(category_id, purpose_id)
