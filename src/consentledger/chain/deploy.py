"""Deploy a consortium and its ledger, and describe the result in a manifest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3

from consentledger.chain.compile import ContractArtifact, compile_contracts, compiler_description
from consentledger.chain.ledger import Ledger
from consentledger.chain.manifest import DeployedContract, Deployment
from consentledger.chain.reverts import RevertDecoder
from consentledger.chain.sender import TransactionSender
from consentledger.errors import ConfigurationError


def deploy(
    w3: Web3,
    deployer: LocalAccount,
    admins: Sequence[str],
    threshold: int,
    *,
    admin_names: Sequence[str] = (),
    artifacts: dict[str, ContractArtifact] | None = None,
    confirmations: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> Ledger:
    """Deploy Consortium (founded by `admins`, M-of-N `threshold`) and AccessLedger bound to it."""
    if not admins:
        raise ConfigurationError("at least one admin is required")
    if not 1 <= threshold <= len(admins):
        raise ConfigurationError(f"threshold must be between 1 and {len(admins)} (the number of admins)")
    admin_addresses = [to_checksum_address(a) for a in admins]
    if len(set(admin_addresses)) != len(admin_addresses):
        raise ConfigurationError("admins must be distinct")
    progress("compiling contracts")
    artifacts = artifacts or compile_contracts()
    decoder = RevertDecoder(a.abi for a in artifacts.values())
    sender = TransactionSender(w3, deployer, decoder, confirmations=confirmations)
    start_block = w3.eth.block_number

    progress("deploying Consortium")
    consortium = _deploy(sender, artifacts["Consortium"], admin_addresses, list(admin_names), threshold)
    progress("deploying AccessLedger")
    access = _deploy(sender, artifacts["AccessLedger"], consortium)

    deployment = Deployment(
        chain_id=w3.eth.chain_id,
        deploy_block=start_block + 1,
        deployer=sender.address,
        compiler=compiler_description(),
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        contracts={
            "Consortium": DeployedContract(consortium, artifacts["Consortium"].abi_hash),
            "AccessLedger": DeployedContract(access, artifacts["AccessLedger"].abi_hash),
        },
    )
    return Ledger(w3, deployment, artifacts)


def _deploy(sender: TransactionSender, artifact: ContractArtifact, *args: object) -> str:
    factory = sender.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = sender.transact(factory.constructor(*args))
    return str(receipt["contractAddress"])
