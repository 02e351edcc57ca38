#!/usr/bin/env python3
"""Run slither over the contracts and fail on any finding the triage does not accept.

Slither (in its own venv, .venv-slither: it pins web3<8, the package web3 8) reads the same
sources `consentledger.chain.compile` hands solc, compiled by the pinned solcjs through
scripts/solc_solcjs.py, so nothing is downloaded. slither.config.json holds the run's settings
(dependency paths filtered, detectors excluded); slither.triage.toml lists each accepted finding
with why. Exit 0: every finding is accepted and every accepted finding is still reported; 1: a new
finding, or an accepted one slither no longer reports (remove it from the triage); 2: slither
could not run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consentledger.chain.compile import EVM_VERSION, source_units

ROOT = Path(__file__).resolve().parent.parent
SLITHER = ROOT / ".venv-slither" / "bin" / "slither"
CONFIG = ROOT / "slither.config.json"
TRIAGE = ROOT / "slither.triage.toml"
SOLC = ROOT / "scripts" / "solc_solcjs.py"


@dataclass(frozen=True, order=True)
class Finding:
    """One slither result, named by its detector and where it is (stable when lines move)."""

    check: str
    where: str  # e.g. "Consortium._execute", "RecordRegistry._sources", "DataCatalog.f.known"
    impact: str = ""
    summary: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.check, self.where)


@dataclass(frozen=True)
class Verdict:
    """What the run found against the triage."""

    findings: list[Finding]
    new: list[Finding]
    stale: list[tuple[str, str]]  # accepted (check, where) slither no longer reports

    @property
    def ok(self) -> bool:
        return not self.new and not self.stale


class SlitherUnavailable(RuntimeError):
    """Raised when slither is not installed or could not analyse the sources."""


def slither_version(slither: Path = SLITHER) -> str:
    """Return the installed slither's version, e.g. "0.11.6"."""
    _require(slither)
    return subprocess.run([str(slither), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def run_slither(source_dir: Path, *, slither: Path = SLITHER, config: Path = CONFIG) -> list[Finding]:
    """Return slither's findings over `source_dir` (and its imports, as the config filters them)."""
    _require(slither)
    source_dir = source_dir.resolve()
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(source_units(source_dir).items())},
        # No optimizer or viaIR: slither reads the AST, and legacy codegen is the quickest.
        "settings": {"evmVersion": EVM_VERSION},
    }
    with tempfile.TemporaryDirectory(prefix="slither-") as tmp:
        target = Path(tmp) / "standard-input.json"
        target.write_text(json.dumps(standard_input), encoding="utf-8")
        report = Path(tmp) / "report.json"
        proc = subprocess.run(
            [
                str(slither),
                str(target),
                "--config-file",
                str(config),
                "--compile-force-framework",
                "solc-json",
                "--solc",
                str(SOLC),
                "--solc-working-dir",
                str(source_dir.parent),
                "--json",
                str(report),
            ],
            cwd=source_dir.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            output = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            output = {"success": False, "error": None}
    if not output.get("success"):
        detail = output.get("error") or proc.stderr[-2000:]
        raise SlitherUnavailable(f"slither failed (exit {proc.returncode}): {detail}")
    return sorted(_finding(result) for result in output.get("results", {}).get("detectors", []))


def load_triage(path: Path = TRIAGE) -> set[tuple[str, str]]:
    """Return the accepted (check, where) pairs of the triage file."""
    with path.open("rb") as fh:
        triage = tomllib.load(fh)
    accepted: set[tuple[str, str]] = set()
    for entry in triage.get("accepted", []):
        if not str(entry.get("why", "")).strip():
            raise ValueError(f"{path}: the accepted {entry.get('check')} finding(s) say no why")
        accepted.update((entry["check"], where) for where in entry["where"])
    return accepted


def judge(findings: Iterable[Finding], accepted: set[tuple[str, str]]) -> Verdict:
    """Return which findings are new and which accepted ones are no longer reported."""
    findings = sorted(set(findings))
    reported = {f.key for f in findings}
    new = [f for f in findings if f.key not in accepted]
    stale = sorted(accepted - reported)
    return Verdict(findings, new, stale)


def render(verdict: Verdict, triage: Path) -> list[str]:
    """Return the lines the check prints."""
    lines = [
        f"slither: {len({f.key for f in verdict.findings})} finding(s), "
        f"{len(verdict.new)} new, {len(verdict.stale)} accepted but no longer reported ({triage.name})"
    ]
    lines += [f"NEW {f.check} ({f.impact}) {f.where}: {f.summary}" for f in verdict.new]
    lines += [
        f"STALE {check} {where}: no longer reported; remove it from {triage.name}" for check, where in verdict.stale
    ]
    return lines


def _finding(result: dict[str, Any]) -> Finding:
    elements = result.get("elements") or []
    where = _qualified_name(elements[0]) if elements else "?"
    summary = result.get("description", "").strip().splitlines()[0] if result.get("description") else ""
    return Finding(result["check"], where, result.get("impact", ""), summary)


def _qualified_name(element: dict[str, Any]) -> str:
    """Return "Contract.function.variable" for an element (a node is named by its function)."""
    parts: list[str] = []
    current: dict[str, Any] | None = element
    while current is not None:
        if current.get("type") != "node":
            parts.append(str(current.get("name")))
        current = (current.get("type_specific_fields") or {}).get("parent")
    return ".".join(reversed(parts))


def _require(slither: Path) -> None:
    if not slither.is_file():
        raise SlitherUnavailable(f"{slither} is missing; run `make bootstrap` (it makes .venv-slither)")


def main() -> int:
    """Run the check; print one line per new or stale finding."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=Path, default=ROOT / "contracts", help="directory of .sol files")
    parser.add_argument("--triage", type=Path, default=TRIAGE, help="accepted findings (TOML)")
    args = parser.parse_args()
    try:
        verdict = judge(run_slither(args.contracts), load_triage(args.triage))
    except (SlitherUnavailable, ValueError, OSError) as exc:
        print(f"slither check: {exc}", file=sys.stderr)
        return 2
    print("\n".join(render(verdict, args.triage)))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
