# siked: set-up, quickstart and tests. Every target creates .venv/ first if needed.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.siked-installed
OV_VENV ?= .venv-openvino
OV_STAMP := $(OV_VENV)/.siked-installed
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.siked-installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export SIKED_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup openvino vllm envs quickstart test lint typecheck unit integration clean

setup: $(STAMP)

# the environments, built side by side (each pip is mostly one core)
envs:
	$(MAKE) -j3 $(STAMP) $(OV_STAMP) $(VLLM_STAMP)

$(STAMP): pyproject.toml scripts/setup.sh scripts/torch.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

# the openvino engine's converter, in its own environment (scripts/openvino_env.sh)
openvino: $(OV_STAMP)

$(OV_STAMP): scripts/openvino_env.sh scripts/torch.sh
	bash scripts/openvino_env.sh $(OV_VENV)
	touch $(OV_STAMP)

# the vllm engine's server, vLLM's CPU build in its own environment (scripts/vllm_env.sh)
vllm: $(VLLM_STAMP)

$(VLLM_STAMP): scripts/vllm_env.sh scripts/torch.sh
	bash scripts/vllm_env.sh $(VLLM_VENV)
	touch $(VLLM_STAMP)

# the two environments side by side (each pip is mostly one core), then the run
quickstart:
	$(MAKE) -j2 $(STAMP) $(OV_STAMP)
	$(BIN)/siked run configs/quickstart.yaml

lint: $(STAMP)
	$(BIN)/ruff check siked tests benchmarks scripts
	$(BIN)/ruff format --check siked tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not integration" -q

integration: $(STAMP) $(OV_STAMP) $(VLLM_STAMP)
	$(BIN)/pytest -m integration -q

test: envs
	$(MAKE) lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) $(OV_VENV) $(VLLM_VENV) .pytest_cache .mypy_cache .ruff_cache
