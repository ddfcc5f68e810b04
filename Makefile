# Two commands on a fresh machine: `make run` and `make test`.
# Python packages come from uv.lock only (exact versions and hashes, from PyPI), installed by
# a pinned uv; see docs/install.md for how to update the lock.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv lives outside .venv: `uv sync` removes from .venv whatever the lock does not list.
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# uv reads no pip.conf; say the rest: this .venv, the machine's Python (never a downloaded
# one), copies from uv's cache (which may sit on another file system), and compiled bytecode:
# with PYTHONDONTWRITEBYTECODE set, every process would compile ccxt & co. again (~3 s CPU each).
UV_ENV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy \
	UV_COMPILE_BYTECODE=1

.PHONY: run test lint typecheck unit docs docs-check bench clean install lock

$(UV): requirements-uv.txt
	test -x $(TOOLS)/bin/python || $(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements-uv.txt
	touch $(UV)

# --locked: a pyproject.toml that no longer matches uv.lock fails here, nothing is resolved.
$(STAMP): pyproject.toml uv.lock $(UV)
	@$(UV_ENV) $(UV) sync --locked --extra dev --python $(PY) || { \
		echo "make: could not install uv.lock into $(VENV). If pyproject.toml changed," \
		"update the lock with '$(UV) lock', then run 'make test' (docs/install.md)." >&2; \
		exit 1; }
	$(BIN)/python -m compileall -q bot strategies
	touch $(STAMP)

install: $(STAMP)

# Re-resolve uv.lock after editing the dependencies in pyproject.toml.
lock: $(UV)
	$(UV_ENV) $(UV) lock

run: $(STAMP)
	$(BIN)/liqguard run

lint: $(STAMP)
	$(BIN)/ruff check bot strategies tests bench
	$(BIN)/ruff format --check bot strategies tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The manual (docs/, mkdocs.yml) as a site in site/; --strict: a broken link or anchor fails.
# NO_MKDOCS_2_WARNING: Material's end-of-life banner (May 2027) on every build; see
# docs/development.md.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

docs: $(STAMP)
	$(MKDOCS) build --strict

# Not --quiet: it drops the warnings before --strict counts them, and nothing fails.
docs-check: $(STAMP)
	$(MKDOCS) build --strict --site-dir $(VENV)/docs-check-site

# anvil, the local Ethereum node of the on-chain tests: pinned in package.json/package-lock.json.
ANVIL_STAMP := node_modules/.anvil-installed

$(ANVIL_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(ANVIL_STAMP)

# -n auto: one pytest-xdist worker per core; each worker starts its own servers on free ports.
unit: $(STAMP) $(ANVIL_STAMP)
	$(BIN)/pytest -q -n auto

test: lint typecheck docs-check unit

bench: $(STAMP)
	$(BIN)/python bench/detect_throughput.py

clean:
	rm -rf $(VENV) $(TOOLS) site .pytest_cache .mypy_cache .ruff_cache
