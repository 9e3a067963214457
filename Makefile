# Kaizen: one Makefile, every entry point. `make help` lists them.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup jars demo test lint unit integration bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || PY=python3; $${PY:-$(PY)} -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create the venv, install Python deps, Java/Maven if missing, the Kafka jars
	@bash infra/install-system-deps.sh
	$(BIN)/python -m kaizen.infra.kafka fetch

jars: $(STAMP) ## Fetch the Kafka broker jars from Maven Central (once)
	$(BIN)/python -m kaizen.infra.kafka fetch

lint: $(STAMP) ## ruff, mypy and the import-linter layering contract
	$(BIN)/ruff check .
	$(BIN)/mypy kaizen bench
	$(BIN)/lint-imports

unit: $(STAMP) ## Unit tests only (no broker)
	$(BIN)/pytest tests/unit -q

integration: setup ## Integration tests against a real broker started for the session
	@bash infra/install-system-deps.sh --browser
	$(BIN)/pytest tests/integration -q

test: setup lint ## Set everything up, lint, and run the whole suite
	@bash infra/install-system-deps.sh --browser
	$(BIN)/pytest -q

demo: setup ## Start the local stack and run the main job
	$(BIN)/kaizen demo

bench: setup ## Print the benchmark figures
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/process.py
	$(BIN)/python bench/rollback.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/otlp.py

clean: ## Stop the local stack and remove data dirs
	-$(BIN)/kaizen down
	rm -rf .kaizen
