"""A Hyperledger Besu QBFT network: generate its directory, check it offline, derive its accounts allowlist."""
