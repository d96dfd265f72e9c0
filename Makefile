# kfops developer entry points. `make demo` and `make test` are the two commands of the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# An interpreter of version $(1) that really runs: pythonX.Y on PATH, else pyenv's newest X.Y (a pyenv shim on
# PATH is not enough: it fails when that version is not selected).
comma := ,
find_python = $(shell for p in python$(1) $$(ls -d $$(pyenv root 2>/dev/null)/versions/$(1).*/bin/python$(1) \
	2>/dev/null | sort -V | tail -n 1); do "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(1))))' \
	2>/dev/null && { command -v "$$p"; break; }; done)

# The project targets Python 3.11 (override with PYTHON=...).
PYTHON ?= $(call find_python,3.11)
VENV := .venv
BIN := $(VENV)/bin
# The seldon-core wrapper runs in its own venv with Python 3.12 (its protobuf and numpy pins conflict with kfp's).
SELDON_PYTHON ?= $(call find_python,3.12)
SELDON_VENV := .venv-seldon
# Which seldon-core the wrapper runs: `seldon` (1.17.1, the last Apache-2.0 release) or, only by an explicit choice,
# `seldon-bsl` (1.19.0, Business Source License 1.1). See serving/pyproject.toml.
SELDON_EXTRA ?= seldon
# The benchmarks' KServe peer (KServe's Python model server) runs in its own venv: kserve pins pandas<3 and psutil<6,
# which conflict with kfops' own. Only `make bench` makes it; the kserve version is pinned in the requirements file.
KSERVE_PYTHON ?= $(call find_python,3.11)
KSERVE_VENV := .venv-kserve
KSERVE_REQUIREMENTS := benchmarks/peers/kserve-requirements.txt
KFOPS := $(BIN)/kfops
# Tests run in two processes (one per core), each test file whole in one of them: a file's module fixtures (a
# platform, a served model, a run) are set up once. `make test PARALLEL=` runs them in one process.
PARALLEL ?= -n 2 --dist loadfile --no-loadscope-reorder
# State of `make demo` (the same default `kfops` uses).
export KFOPS_STATE_DIR ?= .kfops
# Recipe of `make demo` (`make demo RECIPE=iris`); empty: the CLI's default (kfops/base/defaults.py).
RECIPE ?=

.PHONY: help venv browser test e2e-kind check lint bench demo down clean

help: ## Show the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

venv: $(VENV)/.installed $(SELDON_VENV)/.installed ## Create or update both virtual environments (idempotent)

# Rebuilt only when the pinned dependencies change.
# The overrides go in after the pins, over MLServer 1.7.1's fastapi<0.116 (its last release): that pin holds Starlette
# below the release that fixes CVE-2026-48710. pip reports the broken pin once; docs/security.md says why.
$(VENV)/.installed: pyproject.toml serving/pyproject.toml requirements-overrides.txt
	@test -n "$(PYTHON)" || { echo "kfops needs Python 3.11: put python3.11 on PATH or set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e './serving[mlserver]' -e '.[dev]'
	$(BIN)/python -m pip install --quiet -r requirements-overrides.txt
	touch $@

# The wrapper's overrides (gunicorn over seldon-core 1.17.1's <20.2 pin) go in after it, as in serving/Dockerfile.
$(SELDON_VENV)/.installed: serving/pyproject.toml serving/requirements-overrides-seldon.txt
	@test -n "$(SELDON_PYTHON)" || { echo "the seldon-core wrapper needs Python 3.12: put python3.12 on PATH or set SELDON_PYTHON=/path/to/python3.12"; exit 1; }
	@if [ "$(SELDON_EXTRA)" != seldon ]; then echo "WARNING: SELDON_EXTRA=$(SELDON_EXTRA) installs a Business Source License release of seldon-core, which restricts production use; 1.17.1 (SELDON_EXTRA=seldon) is the last Apache-2.0 release" >&2; fi
	test -x $(SELDON_VENV)/bin/python || $(SELDON_PYTHON) -m venv $(SELDON_VENV)
	$(SELDON_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SELDON_VENV)/bin/python -m pip install --quiet -e './serving[$(SELDON_EXTRA),test]'
	$(SELDON_VENV)/bin/python -m pip install --quiet -r serving/requirements-overrides-seldon.txt
	touch $@

$(KSERVE_VENV)/.installed: $(KSERVE_REQUIREMENTS)
	@test -n "$(KSERVE_PYTHON)" || { echo "the benchmarks' KServe peer needs Python 3.11: put python3.11 on PATH or set KSERVE_PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(KSERVE_VENV)/bin/python || $(KSERVE_PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(KSERVE_VENV)/bin/python -m pip install --quiet -r $(KSERVE_REQUIREMENTS)
	touch $@

# The report rendering test opens the run's HTML pages in Debian's headless Chromium.
browser: ## Install Debian's chromium for the report rendering test (once; needs root or sudo)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium (headless, for the report rendering test)"; \
	  $$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; }

test: venv browser ## Run every test (unit, integration, e2e on the local target; the serving package under both Pythons)
	$(BIN)/pytest -m "not kind" $(PARALLEL)

e2e-kind: $(VENV)/.installed ## The nightly job: a kind cluster, both images, pulumi up, the e2e and kind tests, forensics, destroy
	$(BIN)/pip install --quiet -e ".[kind]"
	$(BIN)/pytest -m "e2e or kind" --target kind -o timeout_func_only=true --timeout 5400 -q

check: venv ## The fast unit tests only (under a minute; no services started)
	$(BIN)/pytest -m "not integration and not e2e and not kind" -q $(PARALLEL)

lint: venv ## Static checks: ruff, import layers, types, hadolint on the Dockerfiles, the GitHub workflows' schema
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/hadolint */Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yaml

# One after another on a quiet machine: each script starts what it measures on free ports, and measures side by side.
bench: venv $(KSERVE_VENV)/.installed ## Regenerate every figure of benchmarks/README.md (JSON + PNG in benchmarks/figures/; about 45 min)
	$(BIN)/python benchmarks/tuning_overhead.py
	$(BIN)/python benchmarks/suite_times.py
	$(BIN)/python benchmarks/pipeline_walltime.py
	$(BIN)/python benchmarks/serving_throughput.py
	$(BIN)/python benchmarks/latency.py
	$(BIN)/python benchmarks/profile_request.py
	$(BIN)/python benchmarks/soak.py

demo: venv ## Start the local platform and run the whole workflow on it (offline; RECIPE=iris for another recipe)
	$(KFOPS) local up
	$(KFOPS) pipeline run --local$(if $(RECIPE), --recipe $(RECIPE))
	@echo
	@echo "Environment for S3 and MLflow clients (eval \"\$$(kfops local env)\"):"
	@$(KFOPS) local env
	@echo
	@echo "Services keep running until: make down"

down: ## Stop every local service (data stays in the state dir, KFOPS_STATE_DIR or .kfops)
	@if [ -x $(KFOPS) ]; then $(KFOPS) local down; else echo "no venv: nothing to stop"; fi

clean: down ## Stop services, delete the venvs, the local state and everything else make and the tools created
	rm -rf $(VENV) $(SELDON_VENV) $(KSERVE_VENV) $(KFOPS_STATE_DIR) out rendered build dist .mypy_cache .ruff_cache .pytest_cache \
		serving/.pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
