"""scripts/torch.sh: which torch build the set-up installs (the CPU build without a GPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TORCH_SH = Path(__file__).resolve().parents[1] / "scripts" / "torch.sh"
BASH = shutil.which("bash") or "/bin/bash"


def bash(code: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, "-c", f'source "{TORCH_SH}"; {code}'],
        input=stdin, capture_output=True, text=True, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("nvidia_smi", "setting", "build"),
    [
        (None, "", "cpu"),
        ("exit 0", "", "cuda"),  # lists a GPU
        ("exit 9", "", "cpu"),  # installed, but no GPU (driver not loaded)
        ("exit 0", "cpu", "cpu"),
        (None, "cuda", "cuda"),
        (None, "pip", "pip"),
    ],
)
def test_the_build_follows_the_gpu_unless_chosen(
    tmp_path: Path, nvidia_smi: str | None, setting: str, build: str
) -> None:
    if nvidia_smi is not None:
        fake = tmp_path / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        fake.chmod(0o755)
    env = (
        {"PATH": str(tmp_path), "SIKED_TORCH_BUILD": setting}
        if setting
        else {"PATH": str(tmp_path)}
    )
    out = bash("torch_build", env)
    assert (out.returncode, out.stdout.strip()) == (0, build), out.stderr


def test_an_unknown_build_is_an_error(tmp_path: Path) -> None:
    out = bash("torch_build", {"PATH": str(tmp_path), "SIKED_TORCH_BUILD": "rocm"})
    assert out.returncode == 2 and "use auto, cpu, cuda or pip" in out.stderr


def report(version: str, requires: list[str], url: str) -> str:
    item = {"metadata": {"name": "torch", "version": version, "requires_dist": requires}}
    return json.dumps({"install": [{**item, "download_info": {"url": url}}]})


def test_a_wheel_that_needs_cuda_libraries_is_not_a_cpu_build() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    cpu = report("2.13.0+cpu", ["filelock", "sympy>=1.13"], "file:///w/torch-2.13.0%2Bcpu-x.whl")
    out = bash(f'report_is_cpu_build "{sys.executable}"', env, cpu)
    assert out.returncode == 0 and out.stdout.strip() == "torch-2.13.0%2Bcpu-x.whl", out.stderr
    needs = ['nvidia-cudnn-cu13==9.20.0.48; platform_system == "Linux"', "filelock"]
    cuda = report("2.13.0", needs, "https://files.example/torch-2.13.0-cp311-linux.whl")
    out = bash(f'report_is_cpu_build "{sys.executable}"', env, cuda)
    assert out.returncode == (1 if sys.platform.startswith("linux") else 0), out.stderr
    other_os = report("2.13.0", ['nvidia-nccl-cu13; platform_system == "Plan9"'], "https://x/t.whl")
    assert bash(f'report_is_cpu_build "{sys.executable}"', env, other_os).returncode == 0
