"""Compile the Solidity contracts with solc (native or the pinned solcjs); cache the artifacts."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError
from solcx.wrapper import get_solc_version

from consentledger import paths
from consentledger.errors import CompilationError

EVM_VERSION = "shanghai"
# viaIR: the IR pipeline's optimizer keeps calldata reads and stack shuffling out of the access path,
# about 2,000 gas per batch item (31,700 -> 29,900 for a repeat access in a batch of 50) and 1,900 per
# single access; compiling takes about 3x longer (once, then cached).
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
    "evmVersion": EVM_VERSION,
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}
_MAX_REPORTED_ERRORS = 5

log = logging.getLogger(__name__)

# Comments are blanked before scanning so a commented-out import is not followed; string literals
# are matched first so "//" inside a string is not taken for a comment.
_COMMENT_OR_STRING = re.compile(
    r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|//[^\n]*|/\*.*?\*/', re.DOTALL
)
_IMPORT = re.compile(r'\bimport\s+(?:[^;"\']*?\bfrom\s+)?["\']([^"\']+)["\'][^;]*;')


@dataclass(frozen=True)
class ContractArtifact:
    """What deployment and bindings need from one compiled contract or interface."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    abi_hash: str


@dataclass(frozen=True)
class _Compiler:
    description: str
    native: Path | None  # None: run solcjs through node
    solcjs: Path | None


def compile_contracts(
    source_dir: Path | None = None, *, build_dir: Path | None = None, force: bool = False
) -> dict[str, ContractArtifact]:
    """Return the artifacts of every contract in `source_dir` (recursively), by contract name.

    Imports (relative and npm packages such as `@openzeppelin/...`) are read by us and handed to
    solc as sources. The result is cached under `build_dir`, keyed by compiler, settings and
    every source's content; `force` recompiles anyway.
    """
    source_dir = (source_dir or paths.contracts_dir()).resolve()
    build_dir = build_dir or paths.build_dir()
    project_units = _project_units(source_dir)
    sources = _collect_sources(source_dir, project_units, paths.node_modules())
    compiler = _find_compiler()
    key = _cache_key(compiler.description, sources)
    cache_file = build_dir / f"artifacts-{key[:16]}.json"
    if not force:
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(sources.items())},
        "settings": SETTINGS,
    }
    output = _invoke(compiler, standard_input)
    artifacts = _artifacts_from(output, set(project_units))
    _write_cache(cache_file, compiler.description, artifacts)
    return artifacts


def source_units(source_dir: Path | None = None) -> dict[str, str]:
    """Return the text of every source `compile_contracts` hands solc, by source unit name.

    The units are `source_dir`'s files (named relative to its parent, e.g. "contracts/X.sol") and
    everything they import (e.g. "@openzeppelin/contracts/..."), for tools that read the same
    sources (slither).
    """
    source_dir = (source_dir or paths.contracts_dir()).resolve()
    return _collect_sources(source_dir, _project_units(source_dir), paths.node_modules())


def compiler_description() -> str:
    """Return the compiler `compile_contracts` uses, e.g. "solcjs 0.8.28 (node_modules/solc)"."""
    return _find_compiler().description


def _project_units(source_dir: Path) -> list[str]:
    return [p.relative_to(source_dir.parent).as_posix() for p in source_dir.rglob("*.sol")]


def _collect_sources(
    source_dir: Path, project_units: list[str], node_modules: Path
) -> dict[str, str]:
    """Return the project files and everything they import, by source unit name."""
    if not project_units:
        raise CompilationError(f"no .sol files under {source_dir}")
    root = source_dir.parent
    pending = list(project_units)
    sources: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = _locate(unit, root, node_modules).read_text(encoding="utf-8")
        sources[unit] = text
        for imported in _imports(text):
            if imported.startswith(("./", "../")):
                imported = posixpath.normpath(posixpath.join(posixpath.dirname(unit), imported))
            if imported.startswith("../") or posixpath.isabs(imported):
                raise CompilationError(f"import {imported!r} in {unit} leaves the project")
            pending.append(imported)
    return sources


def _imports(text: str) -> list[str]:
    uncommented = _COMMENT_OR_STRING.sub(
        lambda m: m.group() if m.group()[0] in "\"'" else " ", text
    )
    return _IMPORT.findall(uncommented)


def _locate(unit: str, root: Path, node_modules: Path) -> Path:
    for candidate in (root / unit, node_modules / unit):
        if candidate.is_file():
            return candidate
    raise CompilationError(
        f"cannot find {unit!r} under {root} or {node_modules}; run `make bootstrap` (npm install)"
    )


def _native_solc() -> _Compiler | None:
    """Return the `solc` on PATH if it is version 0.8.x, else None."""
    found = shutil.which("solc")
    if found is None:
        return None
    try:
        version = get_solc_version(found)
    except (OSError, ValueError, SolcError, subprocess.SubprocessError):
        return None
    if (version.major, version.minor) != (0, 8):
        return None
    return _Compiler(f"solc {version} (native {found})", Path(found), None)


def _find_compiler() -> _Compiler:
    native = _native_solc()
    if native is not None:
        return native
    solcjs = paths.node_modules() / "solc" / "solc.js"
    if solcjs.is_file() and shutil.which("node"):
        meta = json.loads((solcjs.parent / "package.json").read_text(encoding="utf-8"))
        return _Compiler(f"solcjs {meta['version']} (node_modules/solc)", None, solcjs)
    raise CompilationError(
        "no Solidity compiler: install solc 0.8.x on PATH, or run `make bootstrap`"
        " (npm install) to get node_modules/solc; solcjs also needs `node` on PATH"
    )


def _invoke(compiler: _Compiler, standard_input: dict[str, Any]) -> dict[str, Any]:
    """Run the compiler on a standard-json input and return its output; raise on any error."""
    if compiler.native is not None:
        try:
            output: dict[str, Any] = solcx.compile_standard(
                standard_input, solc_binary=compiler.native
            )
        except SolcError as exc:
            output = {
                "errors": exc.error_dict or [{"severity": "error", "formattedMessage": str(exc)}]
            }
    else:
        output = _run_solcjs(compiler, json.dumps(standard_input))
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        shown = [e.get("formattedMessage") or e.get("message", "") for e in errors]
        more = len(shown) - _MAX_REPORTED_ERRORS
        raise CompilationError(
            f"{compiler.description} rejected the contracts:\n"
            + "\n".join(shown[:_MAX_REPORTED_ERRORS])
            + (f"\n... and {more} more error(s)" if more > 0 else "")
        )
    for warning in output.get("errors", []):
        log.warning("solc: %s", warning.get("formattedMessage", warning.get("message")))
    return output


def _run_solcjs(compiler: _Compiler, standard_input: str) -> dict[str, Any]:
    # Both ends are files, not pipes: solcjs calls process.exit(), which can cut a piped stdout
    # at 64 KiB, and it reads stdin with readFileSync(0), which fails with EAGAIN on a pipe
    # that is not yet full when the input is larger than the pipe buffer.
    with tempfile.TemporaryFile(mode="w+b") as inp, tempfile.TemporaryFile(mode="w+b") as out:
        inp.write(standard_input.encode())
        inp.seek(0)
        proc = subprocess.run(
            ["node", str(compiler.solcjs), "--standard-json"],
            stdin=inp,
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
        out.seek(0)
        raw = out.read().decode("utf-8", errors="replace")
    # solcjs prints an SMT-checker banner (">>> Cannot retry ...") before the JSON.
    start = raw.find("{")
    try:
        parsed: dict[str, Any] = json.loads(raw[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        parsed = {}
    if not parsed:
        stderr = proc.stderr.decode("utf-8", errors="replace").strip()
        raise CompilationError(
            f"{compiler.description} gave no JSON output (exit {proc.returncode}): "
            f"{stderr or raw[:500]}"
        )
    return parsed


def _artifacts_from(output: dict[str, Any], project_units: set[str]) -> dict[str, ContractArtifact]:
    artifacts: dict[str, ContractArtifact] = {}
    where: dict[str, str] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        if unit not in project_units:
            continue  # imported library code: its ABI already shows in the contracts using it
        for name, data in contracts.items():
            abi = data.get("abi", [])
            bytecode = data.get("evm", {}).get("bytecode", {}).get("object", "")
            deployed = data.get("evm", {}).get("deployedBytecode", {}).get("object", "")
            if not abi and not bytecode:
                continue
            if name in artifacts:
                raise CompilationError(f"contract {name} is defined in {where[name]} and {unit}")
            where[name] = unit
            artifacts[name] = _artifact(name, abi, "0x" + bytecode, "0x" + deployed)
    return artifacts


def _artifact(
    name: str, abi: list[dict[str, Any]], bytecode: str, deployed: str
) -> ContractArtifact:
    canonical = json.dumps(abi, sort_keys=True, separators=(",", ":"))
    abi_hash = hashlib.sha256(canonical.encode()).hexdigest()
    return ContractArtifact(name, abi, bytecode, deployed, abi_hash)


def _cache_key(description: str, sources: dict[str, str]) -> str:
    material = {"compiler": description, "settings": SETTINGS, "sources": sorted(sources.items())}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _read_cache(cache_file: Path) -> dict[str, ContractArtifact] | None:
    try:
        stored = json.loads(cache_file.read_text(encoding="utf-8"))
        return {
            name: _artifact(name, a["abi"], a["bytecode"], a["deployed_bytecode"])
            for name, a in stored["artifacts"].items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged cache: compile again


def _write_cache(
    cache_file: Path, description: str, artifacts: dict[str, ContractArtifact]
) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    payload = {"compiler": description, "artifacts": {n: asdict(a) for n, a in artifacts.items()}}
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".artifacts-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, sort_keys=True)
        os.replace(tmp, cache_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def storage_layout(contract: str, source_dir: Path | None = None) -> list[dict[str, Any]]:
    """Return solc's storage layout of `contract` (label, slot, offset, type per state variable), uncached.

    Compiled without optimizer or viaIR: the layout does not depend on them, and this is seconds
    instead of a minute.
    """
    source_dir = (source_dir or paths.contracts_dir()).resolve()
    sources = _collect_sources(source_dir, _project_units(source_dir), paths.node_modules())
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(sources.items())},
        "settings": {"evmVersion": EVM_VERSION, "outputSelection": {"*": {contract: ["storageLayout"]}}},
    }
    output = _invoke(_find_compiler(), standard_input)
    for contracts in output.get("contracts", {}).values():
        if contract in contracts:
            layout: list[dict[str, Any]] = contracts[contract]["storageLayout"]["storage"]
            return layout
    raise CompilationError(f"no contract {contract} in the sources")
