# Kaizen: one Makefile, every entry point. `make help` lists them.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup jars demo test lint unit integration fuzz bench clean

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

fuzz: $(STAMP) ## Fuzz the codec, importers, error normalisation and HTTP API, 10k inputs each
	KAIZEN_FUZZ_EXAMPLES=10000 $(BIN)/pytest tests/fuzz -q -p no:cacheprovider --durations=0 \
		--timeout=0 --session-timeout=86400  # 10k inputs: longer than 5 min a test

test: setup lint ## Set everything up, lint, and run the whole suite
	@bash infra/install-system-deps.sh --browser
	$(BIN)/pytest -q

demo: setup ## Start the local stack and run the main job
	$(BIN)/kaizen demo

bench: setup ## Run every benchmark; one markdown table of the figures in .kaizen/bench.md
	@mkdir -p .kaizen/bench
	$(BIN)/python bench/emit.py --json .kaizen/bench/emit.json
	$(BIN)/python bench/recall.py --json .kaizen/bench/recall.json
	$(BIN)/python bench/process.py --json .kaizen/bench/process.json
	$(BIN)/python bench/rollback.py --json .kaizen/bench/rollback.json
	$(BIN)/python bench/embedding.py
	$(BIN)/python bench/drift.py
	$(BIN)/python bench/faults.py
	$(BIN)/python bench/otlp.py --json .kaizen/bench/otlp.json
	$(BIN)/python bench/report.py --dir .kaizen/bench --out .kaizen/bench.md

clean: ## Stop the local stack and remove data dirs
	-$(BIN)/kaizen down
	rm -rf .kaizen
