"""The shipped accelerate configs, validated by accelerate's own launcher (no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
GPU_CONFIGS = ["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"]


def launch_args(config: str, *extra: str):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    argv = ["--config_file", str(CONFIGS / f"{config}.yaml"), *extra, "-m", "siked", "train"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    return args


@pytest.mark.parametrize("config", GPU_CONFIGS)
def test_gpu_configs_never_assume_a_number_of_gpus(config: str) -> None:
    """A fixed count (it was 8) fails on a smaller node with "invalid device ordinal"; the
    configs make accelerate ask for --num_processes instead, and take the one given."""
    with pytest.raises(ValueError, match="--num_processes"):
        launch_args(config)
    assert launch_args(config, "--num_processes", "2").num_processes == 2
    assert "--num_processes N" in (CONFIGS / f"{config}.yaml").read_text()


def test_cpu_config_runs_two_processes() -> None:
    assert launch_args("cpu_2proc").num_processes == 2
