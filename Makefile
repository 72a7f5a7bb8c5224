# siked: set-up, quickstart and tests. Every target creates .venv/ first if needed.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.siked-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export SIKED_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup quickstart test lint typecheck unit integration clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/siked run configs/quickstart.yaml

lint: $(STAMP)
	$(BIN)/ruff check siked tests benchmarks scripts
	$(BIN)/ruff format --check siked tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not integration" -q

integration: $(STAMP)
	$(BIN)/pytest -m integration -q

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
