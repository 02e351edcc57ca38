#!/usr/bin/env python3
"""Answer solc's command line, as crytic-compile (slither) calls it, with the pinned solcjs.

Only the two calls crytic-compile makes for a standard-json target are served: `--version`, and
`--standard-json` with the input on stdin (any `--allow-paths` is ignored: the input carries every
source's content). No native solc has to be installed or downloaded.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

SOLCJS = Path(__file__).resolve().parent.parent / "node_modules" / "solc" / "solc.js"


def main(argv: list[str]) -> int:
    """Run solcjs for `argv`; return its exit status (2 for a call this adapter does not serve)."""
    if not SOLCJS.is_file():
        print(f"solc_solcjs: {SOLCJS} is missing; run `make bootstrap` (npm ci)", file=sys.stderr)
        return 2
    if argv[:1] == ["--version"]:
        return subprocess.run(["node", str(SOLCJS), "--version"], check=False).returncode
    if argv[:1] == ["--standard-json"]:
        return _standard_json()
    print(f"solc_solcjs: only --version and --standard-json are served, not {argv}", file=sys.stderr)
    return 2


def _standard_json() -> int:
    # Files at both ends, never pipes: solcjs reads stdin with readFileSync(0) (EAGAIN on a pipe
    # not yet full) and its process.exit() can cut a piped stdout at 64 KiB.
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out:
        inp.write(sys.stdin.buffer.read())
        inp.seek(0)
        proc = subprocess.run(["node", str(SOLCJS), "--standard-json"], stdin=inp, stdout=out, check=False)
        out.seek(0)
        raw = out.read()
    # solcjs prints an SMT-checker banner before the JSON; solc's output is the JSON alone.
    start = raw.find(b"{")
    sys.stdout.buffer.write(raw[start:] if start >= 0 else raw)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
