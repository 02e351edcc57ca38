"""Contract behaviour tests on the in-process py-evm chain (eth-tester)."""
