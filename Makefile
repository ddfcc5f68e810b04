# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean install

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/liqguard run

lint: $(STAMP)
	$(BIN)/ruff check bot strategies tests bench
	$(BIN)/ruff format --check bot strategies tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# anvil, the local Ethereum node of the on-chain tests: pinned in package.json/package-lock.json.
ANVIL_STAMP := node_modules/.anvil-installed

$(ANVIL_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(ANVIL_STAMP)

unit: $(STAMP) $(ANVIL_STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/detect_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
