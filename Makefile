# asbuilt — the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint bench down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## Install everything: uv, the locked Python environment, TimescaleDB (needs root or sudo)
	@bash infra/install.sh

demo: install ## Run the whole stack until Ctrl-C (Ctrl-C stops everything it started)
	$(BIN)/asbuilt up

test: install lint ## Run the whole test suite: unit, integration and e2e, on real services
	$(BIN)/python -m pytest

test-fast: ## Unit tests only (no services, seconds)
	$(BIN)/python -m pytest -m unit

lint: ## ruff (lint and format) and mypy (strict on asbuilt/ and the pure pipeline core)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install ## Run the benchmarks and write docs/benchmarks.md
	$(BIN)/python -m bench

down: ## Stop a stack started with `asbuilt up --detach`
	$(BIN)/asbuilt down

clean: ## Stop the stack, delete its data (cluster included), the venv and .tools
	-$(BIN)/asbuilt down --purge
	rm -rf .venv .tools .asbuilt
