# Tape: the two set-up commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba

.PHONY: help demo test test-qlib lint typecheck bench clean test-snapshot-update

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/tape: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/tape
	$(BIN)/pip install --quiet -e '.[dev,ray,prefect]'
	@touch $@

demo: $(BIN)/tape  ## generate data, run three backtests, rebuild the ledger, report, replay
	$(BIN)/tape demo --workdir var/demo

test: $(VENV)/.dev  ## install test tools; ruff, import-linter, mypy (domain, kernel), pytest
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy domain kernel
	$(BIN)/python -m pytest

test-snapshot-update: $(VENV)/.dev  ## rewrite the cockpit's SVG snapshots (tests/snapshots/svg) after an intended change
	TAPE_UPDATE_SNAPSHOTS=1 $(BIN)/python -m pytest -q tests/snapshots

# pyqlib pulls ~115 packages and slows every process that imports jsonschema: its own venv
.venv-qlib/.dev: pyproject.toml
	$(PYTHON) -m venv .venv-qlib
	.venv-qlib/bin/pip install --quiet --upgrade pip
	.venv-qlib/bin/pip install --quiet -e '.[qlib,dev]'
	@touch $@

test-qlib: .venv-qlib/.dev  ## the Qlib bridge tests (export read back by Qlib, qrun Alpha158 + LightGBM) in .venv-qlib
	.venv-qlib/bin/python -m pytest -p no:warnings tests/integration/test_qlib_bridge_cn.py tests/integration/test_qlib_cli_cn.py

lint: $(VENV)/.dev  ## ruff only
	$(BIN)/ruff check .

typecheck: $(VENV)/.dev  ## mypy on domain and kernel
	$(BIN)/mypy domain kernel

$(VENV)/.bench: $(VENV)/.dev
	$(BIN)/pip install --quiet -e '.[bench]'
	@touch $@

bench: $(VENV)/.bench  ## the benchmark table (bench/run.py), JSON in var/bench.json
	$(BIN)/python bench/run.py --json var/bench.json

clean:  ## remove generated data, journals and caches
	rm -rf var .cache .pytest_cache
