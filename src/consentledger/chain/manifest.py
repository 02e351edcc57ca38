"""The deployment manifest: which contracts live where on which chain."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consentledger.errors import ManifestError

FORMAT = 1
DEPLOYED_CONTRACTS = ("Consortium", "AccessLedger")
# Logical modules of the design and the deployed contract that holds each.
MODULES = {
    "Consortium": "Consortium",
    "DataCatalog": "Consortium",
    "RecordRegistry": "AccessLedger",
    "ConsentRegistry": "AccessLedger",
    "AccessLedger": "AccessLedger",
}


@dataclass(frozen=True)
class DeployedContract:
    """One deployed contract: its address and the hash of the ABI it was deployed with."""

    address: str
    abi_hash: str


@dataclass(frozen=True)
class Deployment:
    """Chain id, contract addresses, ABI hashes and deploy block of one consentledger deployment."""

    chain_id: int
    deploy_block: int
    deployer: str
    compiler: str
    deployed_at: str
    contracts: dict[str, DeployedContract]
    modules: dict[str, str] = field(default_factory=lambda: dict(MODULES))
    format: int = FORMAT

    def address_of(self, name: str) -> str:
        """Return the address of a deployed contract."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise ManifestError(f"manifest has no contract {name!r}") from None

    def to_json(self) -> dict[str, Any]:
        """Return the manifest as a JSON-ready dict."""
        return asdict(self)

    def save(self, path: Path) -> None:
        """Write the manifest atomically to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-")
        with os.fdopen(fd, "w") as out:
            json.dump(self.to_json(), out, indent=2)
            out.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a manifest; raise ManifestError naming what is wrong."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ManifestError(f"deployment manifest {path} not found (run `consentledger deploy`)") from None
        except (OSError, ValueError) as exc:
            raise ManifestError(f"deployment manifest {path} is unreadable: {exc}") from None
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "manifest") -> Deployment:
        """Build a manifest from its JSON form."""
        try:
            if data.get("format") != FORMAT:
                raise ManifestError(f"{source}: unsupported manifest format {data.get('format')!r}")
            contracts = {
                name: DeployedContract(address=c["address"], abi_hash=c["abi_hash"])
                for name, c in data["contracts"].items()
            }
            missing = [n for n in DEPLOYED_CONTRACTS if n not in contracts]
            if missing:
                raise ManifestError(f"{source}: missing contracts {', '.join(missing)}")
            return cls(
                chain_id=int(data["chain_id"]),
                deploy_block=int(data["deploy_block"]),
                deployer=str(data["deployer"]),
                compiler=str(data["compiler"]),
                deployed_at=str(data["deployed_at"]),
                contracts=contracts,
                modules=dict(data.get("modules", MODULES)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{source}: malformed manifest ({exc})") from None
