# kfops developer entry points. `make demo` and `make test` are the two commands of the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The project targets Python 3.11; pyenv machines expose it as python3.11 (override with PYTHON=...).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
KFOPS := $(BIN)/kfops
# State of `make demo` (the same default `kfops` uses).
export KFOPS_STATE_DIR ?= .kfops

.PHONY: help venv test lint demo down clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## Create or update the virtual environment (idempotent)

# Rebuilt only when the pinned dependencies change.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"kfops needs Python 3.11, got {sys.version.split()[0]}; set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: venv ## Run every test (unit, integration, e2e on the local target; kind tests skip here)
	$(BIN)/pytest

lint: venv ## Static checks: ruff, hadolint on the Dockerfiles, the GitHub workflows against their schema
	$(BIN)/ruff check .
	$(BIN)/hadolint */Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yaml

demo: venv ## Start the local platform and run the whole workflow on it (offline, wine-quality recipe)
	$(KFOPS) local up
	$(KFOPS) pipeline run --local --recipe winequality --trials 8 --parallel 2
	@echo
	@echo "Environment for S3 and MLflow clients (eval \"\$$(kfops local env)\"):"
	@$(KFOPS) local env
	@echo
	@echo "Services keep running until: make down"

down: ## Stop every local service (data stays in $(KFOPS_STATE_DIR))
	@if [ -x $(KFOPS) ]; then $(KFOPS) local down; else echo "no venv: nothing to stop"; fi

clean: down ## Stop services and delete the venv and local state
	rm -rf $(VENV) $(KFOPS_STATE_DIR)
