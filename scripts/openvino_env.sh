#!/usr/bin/env bash
# Builds the environment of the openvino engine's converter (optimum-cli export openvino).
# optimum-intel 2.2 supports transformers < 5.6, older than siked's own environment needs, so
# it gets its own; siked finds its optimum-cli at .venv-openvino/bin/ (or $SIKED_OPTIMUM_CLI).
# torch is pinned as in setup.sh (scripts/torch.sh); optimum-intel is installed without its
# dependencies because they include torchvision, whose wheels pull a CUDA torch, and nncf,
# which only weight compression needs (siked converts float32 weights).
set -euo pipefail
VENV=${1:-.venv-openvino}
PY=${PY:-python3}
source "$(dirname "$0")/torch.sh"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
install_torch "$VENV/bin/python"
"$VENV/bin/python" -m pip install -q -c <(echo "$TORCH_SPEC") \
  "transformers==5.5.4" "optimum==2.3.0" "openvino==2026.4.1" "openvino-tokenizers==2026.4.1.0" \
  "huggingface-hub<1.22" setuptools requests
"$VENV/bin/python" -m pip install -q --no-deps "optimum-intel==2.2.0"
"$VENV/bin/optimum-cli" export openvino --help > /dev/null
echo "converter ready: $VENV/bin/optimum-cli"
