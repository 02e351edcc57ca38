"""The agency gateway: signed HTTP API over the encrypted store and the ledger."""
