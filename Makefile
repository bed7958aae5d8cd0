# One place for the commands the README, CI and developers use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE ?= playbooks/examples/hello_world.yaml

.PHONY: venv install dev run test lint typecheck unit bench clean system-deps emulators lock package infra-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(BIN)/noetl run $(EXAMPLE)

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy

# The tests start a real PostgreSQL server and drive a headless Chromium; install the
# Debian packages when they are missing.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL server binaries (Debian package postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	@# the viewer's browser tests drive headless Chromium through its system chromedriver
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing Chromium and its driver (Debian packages chromium, chromium-driver)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

test: system-deps lint typecheck infra-check package
	$(BIN)/pytest -q

# Offline checks of infra/ (no provider download, no project): terraform fmt, every .tf
# parsed with python-hcl2 and cross-checked against the declaration and the code
# (tests/unit/test_infra.py), and checkov. checkov pins versions the dev environment
# outgrows (boto3, packaging, its own fork of the hcl2 parser), so it lives in a
# virtualenv of its own.
CHECKOV_VENV ?= .venv-checkov

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'
	touch $@

infra-check: $(VENV)/.installed-dev $(CHECKOV_VENV)/.installed
	@command -v terraform >/dev/null || { echo "infra-check: terraform (>= 1.9) is not on PATH"; exit 1; }
	terraform fmt -check -recursive -diff infra
	$(BIN)/pytest -q tests/unit/test_infra.py
	$(CHECKOV_VENV)/bin/checkov --directory infra --framework terraform --skip-download --quiet --compact

# functions/requirements.txt, pinned from pyproject.toml (needs the package index; a test
# fails when pyproject.toml changed and this was not run).
lock: $(VENV)/.installed-dev
	$(BIN)/python -m noetl_core.devtools.package lock

# dist/function/ and dist/function-<digest>.zip: what a deploy uploads.
package: $(VENV)/.installed-dev
	$(BIN)/python -m noetl_core.devtools.package build

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py
	$(BIN)/python bench/growth.py
	$(BIN)/python bench/versus_dbos.py
	$(BIN)/python bench/cloud.py
	$(BIN)/python bench/coldstart.py
	$(BIN)/python bench/worker_start.py
	$(BIN)/python bench/lifecycle.py

# The local Google Cloud stack with NoETL's functions; prints the environment to export.
emulators: $(VENV)/.installed-dev
	$(BIN)/python -m emulators.stack up --noetl

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .noetl .mypy_cache .ruff_cache .pytest_cache dist
