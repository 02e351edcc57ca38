"""consentledger: consent-based, traceable sharing of personal records on a permissioned ledger."""

__version__ = "0.1.0"
