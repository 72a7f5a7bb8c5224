# Sourced by setup.sh and openvino_env.sh: installs torch into a virtual environment, the CPU
# build on a machine without an NVIDIA GPU and the CUDA build on one with a GPU.
#
#   SIKED_TORCH_SPEC   what to install (default torch==2.13.0)
#   SIKED_TORCH_BUILD  auto (default: cuda when `nvidia-smi -L` lists a GPU, else cpu) | cpu |
#                      cuda (plain pip: PyPI's Linux wheels are CUDA builds) | pip (plain pip,
#                      whatever build it picks)
#   SIKED_TORCH_INDEX  the CPU wheels' index (default https://download.pytorch.org/whl/cpu);
#                      PyPI stays an extra index for torch's dependencies
#
# For cpu, pip is first asked (--dry-run) which wheel it would install; a wheel that needs
# NVIDIA's CUDA libraries is refused with a message, never installed. Where the CPU index is
# unreachable (an offline mirror), a CPU wheel pip finds elsewhere (its find-links, a local index)
# is accepted: what counts is the build, not where it comes from.

TORCH_SPEC=${SIKED_TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX=${SIKED_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

# cpu | cuda | pip: the build to install on this machine
torch_build() {
  local build=${SIKED_TORCH_BUILD:-auto}
  case "$build" in
    auto)
      if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then
        echo cuda
      else
        echo cpu
      fi ;;
    cpu | cuda | pip) echo "$build" ;;
    *) echo "SIKED_TORCH_BUILD=$build: use auto, cpu, cuda or pip" >&2; return 2 ;;
  esac
}

# reads pip's installation report (JSON) on stdin; prints the wheel and succeeds when it is a
# CPU build: no requirement on NVIDIA's CUDA packages (markers evaluated for this machine)
report_is_cpu_build() {
  "$1" -c '
import json, sys
try:
    from pip._vendor.packaging.requirements import Requirement
except ImportError:
    Requirement = None
report = json.load(sys.stdin)
(item,) = [i for i in report["install"] if i["metadata"]["name"].lower() == "torch"]
cuda = []
for line in item["metadata"].get("requires_dist") or []:
    req = Requirement(line) if Requirement else None
    name = req.name if req else line.split(";")[0].strip()
    applies = req is None or req.marker is None or req.marker.evaluate({"extra": ""})
    if applies and name.lower().startswith("nvidia-"):
        cuda.append(name)
print(item["download_info"]["url"].rsplit("/", 1)[-1])
sys.exit(1 if cuda else 0)
'
}

# install_torch PYTHON: TORCH_SPEC's build for this machine into PYTHON's environment
install_torch() {
  local py=$1 build report wheel
  build=$(torch_build) || return 2
  if [ "$build" != cpu ]; then
    "$py" -m pip install -q "$TORCH_SPEC"
    return
  fi
  local args=(--index-url "$TORCH_INDEX" --extra-index-url "${SIKED_PYPI_INDEX:-https://pypi.org/simple}" --retries 1)
  report=$("$py" -m pip install -q --dry-run --ignore-installed --no-deps --report - "${args[@]}" "$TORCH_SPEC" 2> /dev/null) || {
    echo "setup: pip found no wheel for $TORCH_SPEC (index $TORCH_INDEX)" >&2
    return 1
  }
  if ! wheel=$(report_is_cpu_build "$py" <<< "$report"); then
    echo "setup: the torch pip would install here ($wheel) is a CUDA build and this machine has no" >&2
    echo "NVIDIA GPU; reach $TORCH_INDEX (or set SIKED_TORCH_INDEX to a CPU wheel index)," >&2
    echo "or install it anyway with SIKED_TORCH_BUILD=pip" >&2
    return 1
  fi
  echo "setup: torch CPU build $wheel"
  # torch alone from there, then its dependencies from pip's usual indexes
  "$py" -m pip install -q --no-deps "${args[@]}" "$TORCH_SPEC"
  "$py" -m pip install -q "$TORCH_SPEC"
}
