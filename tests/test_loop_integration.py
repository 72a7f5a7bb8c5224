"""`siked run` with the real default student, killed with SIGKILL at several points.

A tiny run (4 training questions, 2 training steps, 1 sample per question, few tokens) is
run once without interruption; the same run is then killed repeatedly at different stages and
resumed with the same command. The resumed run's data must equal the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from siked.io import read_json, read_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "data.train=gsm8k:train:4",
    "data.validation_size=2",
    "data.eval=[svamp:2]",
    "loop.iterations=1",
    "loop.patience=3",
    "loop.test_every_iteration=true",
    "train.max_steps=2",
    "train.save_steps=1",
    "train.per_device_batch_size=2",
    "train.max_length=384",
    "train.logging_steps=1",
    "sample.k=2",
    "sample.max_tokens=24",
    "sample.dtype=float32",
    "eval.max_tokens=24",
    "eval.dtype=float32",
]


def command(out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "siked", "run", str(ROOT / "configs" / "quickstart.yaml")]
    cmd += ["--name", "tiny", "--output-dir", str(out)]
    for o in TINY:
        cmd += ["--set", o]
    return cmd


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    return e


def run_to_end(out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command(out), capture_output=True, text=True, env=env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def stage_status(run: Path, key: str) -> str | None:
    try:
        return read_json(run / "manifest.json")["stages"].get(key, {}).get("status")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_and_kill(out: Path, when: Callable[[Path], bool], timeout: float = 600) -> bool:
    """Start the run, SIGKILL its process group once ``when(run_dir)``; False if it finished."""
    proc = subprocess.Popen(
        command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
        start_new_session=True,
    )  # fmt: skip
    run = out / "tiny"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if when(run):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return True
            time.sleep(0.05)
        raise AssertionError("kill condition never met")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def data_of(run: Path) -> dict[str, object]:
    """What must not depend on interruptions: every dataset and every decision."""
    out: dict[str, object] = {}
    for rel in [
        "teacher/kept.jsonl",
        "iter_00/train.jsonl",
        "iter_00/samples.jsonl",
        "iter_01/train.jsonl",
    ]:
        rows = read_jsonl(run / rel)
        out[rel] = sorted(
            json.dumps({k: r[k] for k in ("qid", "strategy", "text", "correct", "sample")})
            for r in rows
        )
    out["iter_01/stats.json"] = read_json(run / "iter_01" / "stats.json")
    for it in (0, 1):
        preds = read_jsonl(run / f"iter_{it:02d}" / "eval" / "predictions.jsonl")
        out[f"iter_{it:02d}/predictions"] = sorted(
            (p["dataset"], p["qid"], p["output"]) for p in preds
        )
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The tiny run made once without interruption: (run directory, stdout, stderr)."""
    out = tmp_path_factory.mktemp("ref")
    proc = run_to_end(out)
    return out / "tiny", proc.stdout, proc.stderr


def test_sigkill_at_several_points_then_resume_equals_uninterrupted(
    tmp_path: Path, reference: tuple[Path, str, str]
) -> None:
    ref, stdout, stderr = reference
    expected = data_of(ref)
    # the terminal shows stage lines and siked's bars only; the rest is in the run's log file
    said = [ln for ln in stdout.splitlines() if ln.startswith("[siked] ")]
    assert any(ln.startswith("[siked] iter 00 train: ") and "steps" in ln for ln in said)
    assert any(ln.startswith("[siked] iter 00 eval: validation ") and "svamp" in ln for ln in said)
    for noise in ("Loading weights", "Tokenizing", "Warning", "{'loss'", "GGUF"):
        assert noise not in stdout + stderr, noise
    log = (ref / "siked.log").read_text()
    assert "iter 00 train: " in log and "siked.train: step 1: " in log

    out = tmp_path / "killed"
    run = out / "tiny"
    kill_points: list[tuple[str, Callable[[Path], bool]]] = [
        ("teacher running", lambda r: stage_status(r, "teacher") == "running"),
        ("first checkpoint", lambda r: any((r / "iter_00" / "model").rglob("checkpoint-1"))),
        ("iteration 0 eval", lambda r: stage_status(r, "iter_00/eval") == "running"),
        ("iteration 0 sample", lambda r: stage_status(r, "iter_00/sample") == "running"),
        ("iteration 1 train", lambda r: stage_status(r, "iter_01/train") == "running"),
    ]
    killed = []
    for name, when in kill_points:
        if run_and_kill(out, when):
            killed.append(name)
    assert len(killed) >= 3, f"only killed at {killed}"
    proc = run_to_end(out)
    assert "final student" in proc.stdout
    assert data_of(run) == expected
    man = read_json(run / "manifest.json")
    assert all(st["status"] == "done" for st in man["stages"].values())
    assert max(st["attempts"] for st in man["stages"].values()) >= 2


def test_run_trains_in_a_child_process_under_the_run_lock(tmp_path: Path) -> None:
    """The GPU path (`loop.train_subprocess`, auto on CUDA) on CPU: the real training stage in a
    real child process, under the lock `siked run` holds; its log lines reach the run's log."""
    cmd = [*command(tmp_path), "--set", "loop.train_subprocess=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = proc.stdout.splitlines()
    assert any(ln.startswith("[siked] iter 01 train: ") for ln in said)
    log = (tmp_path / "tiny" / "siked.log").read_text()
    assert "siked.train: step 1: " in log  # written by the child
    for noise in ("Loading weights", "{'loss'"):
        assert noise not in proc.stdout + proc.stderr, noise


def test_an_ablation_reuses_the_iteration_0_student_of_a_finished_run(
    tmp_path: Path, reference: tuple[Path, str, str]
) -> None:
    """`siked run --reuse` with the real student: another mixing variant's run copies the
    reference run's teacher data and iteration 0 student (same stage inputs: the iteration 0
    mix is the same rows) and evaluates the copy with the real engine to the same answers."""
    ref = reference[0]
    cmd = [*command(tmp_path), "--set", "mix.variant=self", "--set", "loop.iterations=0"]
    proc = subprocess.run(
        [*cmd, "--reuse", str(ref)], capture_output=True, text=True, env=env(), timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"[siked] iter 00 train: reused from {ref} (trained there in " in proc.stdout
    run = tmp_path / "tiny"
    stages = read_json(run / "manifest.json")["stages"]
    assert stages["teacher"]["reused_from"] == stages["iter_00/train"]["reused_from"] == str(ref)
    assert "reused_from" not in stages["iter_00/eval"]
    assert not list((run / "iter_00" / "model").rglob("checkpoint-*"))

    def answers(r: Path) -> list[tuple[str, str, str]]:
        preds = read_jsonl(r / "iter_00" / "eval" / "predictions.jsonl")
        return sorted((p["dataset"], p["qid"], p["output"]) for p in preds)

    assert answers(run) == answers(ref)
