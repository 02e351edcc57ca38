# The two commands a newcomer runs: `make demo` and `make test`.
# Both bootstrap .venv (Python 3.11) and node_modules (pinned solc, ganache, anvil) idempotently.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.bootstrapped
NODE_STAMP := node_modules/.bootstrapped
SLITHER_VENV := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.bootstrapped

.PHONY: bootstrap chromium demo demo-serve test lint gas slither clean

bootstrap: $(PY_STAMP) $(NODE_STAMP) $(SLITHER_STAMP) chromium

# The audit page's browser test drives Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

$(PY_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# Slither needs web3<8 and the package pins web3 8, so it has a venv of its own; it compiles with the
# pinned solcjs through scripts/solc_solcjs.py (no solc download). tests/contracts/test_static_analysis.py
# runs it under `make test`.
$(SLITHER_STAMP): requirements-slither.txt
	test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-slither.txt
	touch $@

# `npm ci` installs exactly the lock (each platform's anvil binary is an optional entry in it) and never
# rewrites it, so a fresh clone stays clean after `make`.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: bootstrap
	$(PY) scripts/demo.py

# The same story, then the chain and both gateways keep running (Ctrl-C stops them): `source .demo/env`
# in another shell and try the README's examples.
demo-serve: bootstrap
	$(PY) scripts/demo.py --serve

# Two workers, each taking whole modules (their real chain and gateway fixtures stay module-wide); a
# single module or test runs on its own with plain `.venv/bin/pytest tests/...`.
test: lint
	$(VENV)/bin/pytest -n 2 --dist loadfile

lint: bootstrap
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/mypy

gas: bootstrap
	$(PY) scripts/gas_report.py

# The static analysis `make test` runs, on its own: new findings against slither.triage.toml.
slither: bootstrap
	$(PY) scripts/slither_check.py

clean:
	rm -rf build .pytest_cache .hypothesis .demo
