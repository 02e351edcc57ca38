"""Where the project's files live: contracts, node_modules, build cache."""

from __future__ import annotations

import os
from pathlib import Path

from consentledger.errors import ConfigurationError

HOME_ENV = "CONSENTLEDGER_HOME"


def project_root() -> Path:
    """Return the checkout holding `contracts/` and `package.json`.

    `$CONSENTLEDGER_HOME` wins; otherwise the first ancestor of this package (editable install)
    or of the working directory that has both.
    """
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "contracts").is_dir() and (candidate / "package.json").is_file():
                return candidate
    raise ConfigurationError(
        f"cannot find the consentledger checkout (contracts/ + package.json); set ${HOME_ENV}"
    )


def contracts_dir() -> Path:
    """Return the directory of the Solidity sources."""
    return project_root() / "contracts"


def node_modules() -> Path:
    """Return the pinned npm tools directory (solcjs, ganache, anvil)."""
    return project_root() / "node_modules"


def build_dir() -> Path:
    """Return the directory for cached compiler artifacts."""
    return project_root() / "build"
