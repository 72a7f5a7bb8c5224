"""The distributed path: the same ``siked train`` as 2 CPU processes (gloo) via accelerate launch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from siked import models

ROOT = Path(__file__).resolve().parents[1]

ROWS = [
    ("What is 2 + 3?", "cot", "2 + 3 = 5.\nThe answer is 5."),
    ("Tom has 4 apples and eats 1. How many are left?", "pot", "apples = 4\nanswer = apples - 1"),
    (
        "A pen costs 3 dollars. How much do 4 pens cost?",
        "l2m",
        "Q1: 4 * 3 = 12.\nThe answer is 12.",
    ),
    ("What is 7 - 2?", "pot", "answer = 7 - 2"),
    ("Ben has 6 cards and gets 6 more. How many now?", "cot", "6 + 6 = 12.\nThe answer is 12."),
    ("Sara reads 10 pages a day. How many in 3 days?", "cot", "10 * 3 = 30.\nThe answer is 30."),
    ("What is 9 - 4?", "pot", "answer = 9 - 4"),
    ("Ann has 2 bags of 5 pens. How many pens?", "cot", "2 * 5 = 10.\nThe answer is 10."),
]


@pytest.mark.integration
@pytest.mark.parametrize("config", ["cpu_2proc", "fsdp"])
def test_two_cpu_processes_train_the_same_weights(tmp_path, config):
    """DDP as 2 gloo processes; the FSDP config too: accelerate shards only on GPUs, so on CPUs
    it trains as data parallel, which siked says, and the LoRA merge after it works."""
    models.resolve_model(models.BUNDLED_STUDENT)  # convert once, outside the two processes
    data = tmp_path / "d.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for i, (q, s, t) in enumerate(ROWS):
            f.write(json.dumps({"qid": f"q{i}", "question": q, "strategy": s, "text": t}) + "\n")
    out = tmp_path / "run"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is not installed next to this python"
    cmd = [
        accelerate,
        "launch",
        "--config_file",
        str(ROOT / "configs" / "accelerate" / f"{config}.yaml"),
        "--num_processes",
        "2",
        "-m",
        "siked",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "max_steps=2",
        "--set",
        "per_device_batch_size=2",
        "--set",
        "max_length=192",
        "--set",
        "logging_steps=1",
        "--set",
        "ddp_timeout=1234",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # the summary is the last thing printed (once, by rank 0), after the Trainer's log lines
    summary = json.loads(proc.stdout[proc.stdout.rindex("{\n") :])
    assert summary["merged"] == str(out / "merged")

    log = json.loads((out / "train_log.json").read_text())
    assert log["world_size"] == 2 and log["global_steps"] == 2
    # the process group was created with train.ddp_timeout, not a library default
    assert log["process_group_timeout_s"] == 1234
    assert log["distributed_type"] == "MULTI_CPU"
    said = "an FSDP config was given, but accelerate shards only on GPUs"
    assert (said in proc.stderr) == (config == "fsdp")
    hashes = log["weights_sha256_by_rank"]
    assert len(hashes) == 2 and hashes[0] and hashes[0] == hashes[1], hashes
    assert (out / "train_done.json").is_file()

    from transformers import AutoModelForCausalLM

    tok = models.load_tokenizer(str(out / "merged"))
    model = AutoModelForCausalLM.from_pretrained(str(out / "merged"))
    batch = tok(["What is 2 + 3?"], return_tensors="pt")
    assert model.generate(**batch, max_new_tokens=4, do_sample=False).shape[1] > 0
