"""`consentledger deploy`: deploy the contracts and write the deployment manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from eth_utils import is_address

from consentledger.cli.common import (
    DEFAULT_MANIFEST,
    DEFAULT_RPC,
    DevAccountOption,
    KeystoreOption,
    PasswordEnvOption,
    RpcOption,
    console,
    signer,
    split_list,
)
from consentledger.errors import ConfigurationError


def deploy(
    admins: Annotated[str, typer.Option("--admins", help="Comma-separated founding admin addresses.")],
    threshold: Annotated[int, typer.Option("--threshold", help="Approvals a proposal needs (M of N).")],
    rpc: RpcOption = DEFAULT_RPC,
    names: Annotated[str, typer.Option("--names", help="Comma-separated admin names, same order.")] = "",
    out: Annotated[Path, typer.Option("--out", help="Where to write the manifest.")] = DEFAULT_MANIFEST,
    confirmations: Annotated[int, typer.Option(help="Blocks to wait after each transaction.")] = 0,
    keystore: KeystoreOption = None,
    password_env: PasswordEnvOption = "CONSENTLEDGER_KEY_PASSWORD",
    dev_account: DevAccountOption = None,
) -> None:
    """Deploy Consortium and AccessLedger, founded by ADMINS with an M-of-N THRESHOLD."""
    from consentledger.chain.connect import connect
    from consentledger.chain.deploy import deploy as deploy_contracts

    admin_list = split_list(admins)
    bad = [a for a in admin_list if not is_address(a)]
    if bad:
        raise ConfigurationError(f"not an address: {', '.join(bad)}")
    account = signer(keystore, password_env, dev_account)
    w3 = connect(rpc)
    with console.status("deploying") as status:
        ledger = deploy_contracts(
            w3,
            account,
            admin_list,
            threshold,
            admin_names=split_list(names),
            confirmations=confirmations,
            progress=lambda step: status.update(step),
        )
    ledger.deployment.save(out)
    d = ledger.deployment
    console.print(f"chain id      {d.chain_id}")
    console.print(f"Consortium    {d.address_of('Consortium')}")
    console.print(f"AccessLedger  {d.address_of('AccessLedger')}")
    console.print(f"deploy block  {d.deploy_block}")
    console.print(f"threshold     {threshold} of {len(admin_list)} admins")
    console.print(f"manifest      {out}")
