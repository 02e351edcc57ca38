#!/usr/bin/env python3
"""Print the gas used per ledger operation, one per line, checked against the targets.

Accesses are measured under each legal basis (consent, statutory mandate, emergency override), each
as a first and a repeat access to a record, beside an auditor's review of an override, the record,
consent and governance writes, and batches.

Starts its own ganache (or anvil with --chain anvil) unless --rpc points at a running chain whose
first six dev accounts are funded (the chains `consentledger chain up` starts are).
"""

from __future__ import annotations

import argparse
import sys

from consentledger.chain.accounts import dev_accounts
from consentledger.chain.connect import connect
from consentledger.chain.gas import measure_gas
from consentledger.chain.node import ChainKind, start_node


def main() -> int:
    """Measure and print; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", choices=[k.value for k in ChainKind], default=ChainKind.GANACHE.value)
    parser.add_argument("--rpc", help="use this running chain instead of starting one")
    args = parser.parse_args()
    if args.rpc:
        figures = measure_gas(connect(args.rpc), dev_accounts(6))
        where = args.rpc
    else:
        with start_node(ChainKind(args.chain)) as node:
            figures = measure_gas(connect(node.rpc_url), dev_accounts(6))
        where = args.chain
    print(f"gas per operation ({where}, shanghai, solc via-IR, optimizer 200 runs)")
    width = max(len(f.operation) for f in figures)
    for figure in figures:
        verdict = "ok" if figure.meets_target else "MISSED"
        target = "" if figure.target is None else f"  (target <= {figure.target:,}: {verdict})"
        print(f"{figure.operation:<{width}} {figure.gas:>10,}{target}")
    return 0 if all(f.meets_target for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
