"""One writer per output directory (siked.lock): refusal, re-entry, trees, dead holders, readers.

The lock tests hold locks from other processes (the lock is per process). The command tests
run the real CLI: two ``siked teach`` / ``siked sample`` / ``siked run`` started together on one
directory (``tests/paused_cli.py`` stops the winner after its first rows until the loser has
been refused), a SIGKILLed run, and a disk that fills up mid-write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from siked import lock
from siked.cli import main
from siked.config import to_yaml
from siked.io import read_json, read_jsonl, write_jsonl
from siked.lock import (
    EXIT_LOCKED,
    LOCK_NAME,
    OutputLocked,
    busy_below,
    holder_of,
    output_lock,
)

ROOT = Path(__file__).resolve().parent.parent
PAUSED_CLI = Path(__file__).resolve().parent / "paused_cli.py"

HOLD = """
import sys
from siked.lock import output_lock
with output_lock(sys.argv[1], sys.argv[2], nested=sys.argv[3] == "nested"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def siked_ok(args: list[str], extra_env: dict[str, str] | None = None) -> None:
    """Run ``python -m siked ARGS`` to the end; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "siked", *args],
        capture_output=True,
        text=True,
        env={**env(), **(extra_env or {})},
    )
    assert done.returncode == 0, done.stderr


@contextmanager
def held_elsewhere(
    directory: Path, stage: str = "teach", nested: bool = True
) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``directory``'s lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), stage, "nested" if nested else "flat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``directory`` with its size and modification time."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


# --------------------------------------------------------------------------------------------
# the lock


def test_lock_file_names_the_holder_while_held(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with output_lock(out, "teach") as holder:
        info = json.loads((out / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() == holder.pid
        assert info["stage"] == "teach" and info["host"] and info["started"]
        assert info["command"] == lock.current_command()
        assert holder_of(out) == holder
    assert (out / LOCK_NAME).read_text() == ""  # kept (deleting it would be racy), emptied
    assert holder_of(out) is None


def count_polls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every sleep of siked.lock's polling (its clock is left alone)."""
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    monkeypatch.setattr(lock, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    return slept


def test_second_process_is_refused_naming_the_holder_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    with held_elsewhere(out, "sample") as proc:
        before = tree(tmp_path)
        polls = count_polls(monkeypatch)
        with pytest.raises(OutputLocked) as err, output_lock(out, "teach"):
            pytest.fail("entered a directory another process holds")
        # refused after the probe's grace, not after waiting for the holder
        assert len(polls) <= 2 * (lock.PROBE_GRACE_S / lock._POLL_S + 1)  # lock + holder probes
        assert tree(tmp_path) == before
    msg = str(err.value)
    assert f"{out} is being written by another process (pid {proc.pid} on host " in msg
    assert f"lock: {out / LOCK_NAME}" in msg
    assert err.value.exit_code == EXIT_LOCKED == 75
    assert err.value.holder.stage == "sample"


def test_reentrant_and_covering_inside_one_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with output_lock(run, "run") as outer:
        with output_lock(run, "run") as again, output_lock(run / "iter_00" / "eval", "eval") as sub:
            assert again == outer == sub  # re-entered / covered: no second lock
            assert (run / "iter_00" / "eval").is_dir()
            assert not (run / "iter_00" / "eval" / LOCK_NAME).exists()
        assert holder_of(run) == outer  # still held after the inner blocks
        # another process can take neither the run nor anything inside it
        for target in (run, run / "teacher"):
            proc = subprocess.run(
                [sys.executable, "-c", HOLD, str(target), "teach", "nested"],
                input="",
                capture_output=True,
                text=True,
                env=env(),
            )
            assert proc.returncode != 0 and f"pid {os.getpid()}" in proc.stderr
    assert holder_of(run) is None


def test_a_directory_inside_another_process_lock_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with held_elsewhere(run, "run") as proc:
        with pytest.raises(OutputLocked) as err, output_lock(run / "iter_00" / "eval", "eval"):
            pytest.fail("wrote inside a run another process holds")
        assert not (run / "iter_00").exists()  # refused before creating anything
    assert f"{run / 'iter_00' / 'eval'} is inside {run}, which is being written" in str(err.value)
    assert f"pid {proc.pid}" in str(err.value)


def test_not_nested_lock_ignores_the_locks_above(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with held_elsewhere(run, "run"), output_lock(run / "report", "report", nested=False) as h:
        assert h.pid == os.getpid()


def test_wait_takes_the_lock_once_the_holder_finishes(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with held_elsewhere(out, "report", nested=False) as proc:
        assert proc.stdin is not None
        threading.Timer(0.5, proc.stdin.close).start()
        with output_lock(out, "report", wait=30, nested=False) as h:
            assert h.pid == os.getpid()


def test_sigkilled_holder_does_not_block(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with held_elsewhere(out) as proc:
        proc.kill()
        proc.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == proc.pid  # stale details
    assert holder_of(out) is None
    with output_lock(out, "teach") as h:
        assert holder_of(out) == h


FORK_THEN_WAIT = """
import os, sys, time
from siked.lock import output_lock
with output_lock(sys.argv[1], "sample"):
    if os.fork() == 0:
        # fork() returns here only after the at-fork handlers ran: the child's copy of the
        # lock descriptor is closed by now (the parent printing the pid could come first)
        print(os.getpid(), flush=True)
        time.sleep(60)
        os._exit(0)
    time.sleep(60)
"""


def test_a_forked_child_does_not_keep_a_killed_parents_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", FORK_THEN_WAIT, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
        start_new_session=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    try:
        assert holder_of(out) is not None
        proc.kill()
        proc.wait()
        os.kill(child, 0)  # the child outlives its parent...
        assert holder_of(out) is None  # ...without the lock
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


PROBE_LOOP = """
import sys, time
from siked.lock import holder_of
end = time.monotonic() + float(sys.argv[2])
print("probing", flush=True)
while time.monotonic() < end:
    holder_of(sys.argv[1])
"""


def test_readers_probing_never_make_a_writer_fail(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(out, "teach"):
        pass  # create the lock file, so that the reader really takes its shared lock
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE_LOOP, str(out), "20"],
        stdout=subprocess.PIPE,
        text=True,
        env=env(),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "probing"
    try:
        for _ in range(40):
            with output_lock(out, "teach"):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_busy_below_finds_a_stage_command_inside(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "report").mkdir(parents=True)
    busy_below(run)  # nothing held
    with held_elsewhere(run / "iter_00" / "eval", "eval") as proc:
        with pytest.raises(OutputLocked) as err:
            busy_below(run)
        assert f"pid {proc.pid}" in str(err.value)
        busy_below(run, depth=1)  # two levels down: not looked at
    with held_elsewhere(run / "report", "report", nested=False):
        busy_below(run, skip=("report",))


# --------------------------------------------------------------------------------------------
# every command that writes refuses a held directory


def _command(name: str, out: Path, tmp_path: Path) -> list[str]:
    teacher, config = tmp_path / "kept.jsonl", ROOT / "configs" / "quickstart.yaml"
    row = {"qid": "q", "question": "1+1?", "gold": "2", "strategy": "cot", "sample": 0}
    row |= {"text": "1+1=2. The answer is 2.", "answer": "2", "correct": True, "rule": "marker"}
    row |= {"status": "ok", "source": "teacher", "iteration": -1}
    write_jsonl(teacher, [row])
    commands = {
        "teach": ["teach", "--engine", "gold", "--limit", "2", "--quiet", "--out", str(out)],
        "sample": ["sample", "--limit", "1", "--quiet", "--out", str(out / "samples.jsonl")],
        "eval": ["eval", "--datasets", "svamp:2", "--quiet", "--out", str(out)],
        "train": ["train", "--data", str(teacher), "--no-progress", "--out", str(out)],
        "mix": ["mix", "--teacher", str(teacher), "--out", str(out)],
        "run": ["run", str(config), "--name", out.name, "--output-dir", str(out.parent)],
        "report": ["report", str(out.parent)],
    }
    return commands[name]


@pytest.mark.parametrize("command", ["teach", "sample", "eval", "train", "mix", "run", "report"])
def test_every_writing_command_refuses_a_held_directory(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import siked.report.markdown

    # where write_report reads it (siked.report only re-exports the value: patching that name
    # left the report case waiting the full 120 s)
    monkeypatch.setattr(siked.report.markdown, "REPORT_LOCK_WAIT_S", 0.5)
    out = tmp_path / "runs" / ("report" if command == "report" else "out")
    argv = _command(command, out, tmp_path)
    with held_elsewhere(out, "x", nested=command != "report") as proc:
        before = tree(tmp_path)
        assert main(argv) == EXIT_LOCKED
        assert tree(tmp_path) == before
    err = capsys.readouterr().err
    assert err.startswith(f"siked {command}: error: {out} is being written by another process")
    assert f"(pid {proc.pid} on host" in err


# --------------------------------------------------------------------------------------------
# reading is never blocked


def test_report_and_compare_on_a_run_in_progress(tmp_path: Path) -> None:
    from synthetic_run import make_synthetic_run

    from siked.report import compare, write_report

    run = make_synthetic_run(tmp_path, "busy", iterations=1)
    with held_elsewhere(run, "run") as proc:
        text = write_report(run).read_text()
        table = compare([run])
    assert f"- state: in progress (pid {proc.pid} on host" in text
    assert "In progress (their numbers may still change): busy." in table

    text = write_report(run).read_text()  # the run's process has finished
    assert "- state: finished (" in text and "In progress" not in compare([run])


def test_report_on_an_interrupted_run(tmp_path: Path) -> None:
    from synthetic_run import make_synthetic_run

    from siked.report import write_report

    run = make_synthetic_run(tmp_path, "killed", iterations=1)
    manifest = read_json(run / "manifest.json")
    manifest["stopped"] = None
    manifest["stages"]["iter_01/eval"]["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with held_elsewhere(run, "run") as proc:
        proc.kill()
    text = write_report(run).read_text()
    assert "- state: interrupted while running iter_01/eval: no process is writing it" in text


# --------------------------------------------------------------------------------------------
# two processes started together on one directory


def paused_cmd(tmp_path: Path, args: list[str], fake_stages: bool = False) -> list[str]:
    flags = ["--fake-stages"] if fake_stages else []
    paused, go = tmp_path / "paused", tmp_path / "go"
    return [sys.executable, str(PAUSED_CLI), str(paused), str(go), *flags, "--", *args]


def contest(cmd: list[str], go: Path, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start ``cmd`` twice at once; the winner pauses after its first rows until the other has
    exited. Returns both processes' pid, status, stdout and stderr."""
    procs = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env(), **(extra_env or {})},
        )
        for _ in range(2)
    ]
    deadline = time.monotonic() + 300
    while all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "neither process was refused"
        time.sleep(0.05)
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    go.touch()
    result = {}
    for role, p in (("loser", loser), ("winner", winner)):
        out, err = p.communicate(timeout=300)
        result[role] = {"pid": p.pid, "rc": p.returncode, "out": out, "err": err}
    return result


def assert_one_refused(result: dict[str, Any], command: str) -> None:
    loser, winner = result["loser"], result["winner"]
    assert winner["rc"] == 0, winner["err"][-3000:]
    assert loser["rc"] == EXIT_LOCKED, loser["err"][-3000:]
    assert f"siked {command}: error: " in loser["err"]
    assert f"is being written by another process (pid {winner['pid']} on host" in loser["err"]


def teach_args(out: Path) -> list[str]:
    return [
        "teach", "--engine", "gold", "--dataset", "gsm8k", "--split", "train", "--limit", "12",
        "--chunk-size", "2", "--out", str(out), "--quiet",
    ]  # fmt: skip


def keys(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["qid"], r["strategy"], r["sample"]) for r in rows]


def test_two_teach_processes_on_one_directory(tmp_path: Path) -> None:
    out = tmp_path / "teacher"
    result = contest(paused_cmd(tmp_path, teach_args(out)), tmp_path / "go")
    assert_one_refused(result, "teach")

    single = tmp_path / "single"
    siked_ok(teach_args(single))
    rows = read_jsonl(out / "samples.jsonl")
    assert len(rows) == len(set(keys(rows))) == 36
    assert sorted(keys(rows)) == sorted(keys(read_jsonl(single / "samples.jsonl")))
    assert (out / "samples.jsonl").read_text() == (single / "samples.jsonl").read_text()
    assert (out / "kept.jsonl").read_text() == (single / "kept.jsonl").read_text()


def sample_args(out: Path, url: str) -> list[str]:
    return [
        "sample", "--model", "fake-model", "--set", "engine=openai", "--set", f"base_url={url}",
        "--k", "2", "--limit", "6", "--chunk-size", "2", "--out", str(out), "--quiet",
    ]  # fmt: skip


def test_two_sample_processes_on_one_file(tmp_path: Path) -> None:
    from fake_openai_server import FakeOpenAIServer

    out = tmp_path / "iter_00" / "samples.jsonl"
    single = tmp_path / "single" / "samples.jsonl"
    key = {"OPENAI_API_KEY": "test"}
    with FakeOpenAIServer() as server:
        cmd = paused_cmd(tmp_path, sample_args(out, server.base_url))
        result = contest(cmd, tmp_path / "go", key)
        siked_ok(sample_args(single, server.base_url), key)
    assert_one_refused(result, "sample")
    assert len(read_jsonl(out)) == 12
    assert out.read_text() == single.read_text()
    stats = read_json(out.with_name("sample_stats.json"))
    assert stats["counts"] == read_json(single.with_name("sample_stats.json"))["counts"]


def run_setup(tmp_path: Path) -> tuple[Path, Any]:
    from test_loop import data_files, tiny_config

    config = tmp_path / "run.yaml"
    config.write_text(to_yaml(tiny_config(tmp_path)))
    return config, data_files


def run_args(config: Path, output_dir: Path) -> list[str]:
    return ["run", str(config), "--output-dir", str(output_dir)]


def single_run(tmp_path: Path, config: Path) -> Path:
    (tmp_path / "go").touch()
    cmd = paused_cmd(tmp_path, run_args(config, tmp_path / "single"), fake_stages=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    return tmp_path / "single" / "t"


def test_two_run_processes_on_one_run_directory(tmp_path: Path) -> None:
    config, data_files = run_setup(tmp_path)
    cmd = paused_cmd(tmp_path, run_args(config, tmp_path / "runs"), fake_stages=True)
    result = contest(cmd, tmp_path / "go")
    assert_one_refused(result, "run")
    run = tmp_path / "runs" / "t"
    assert read_json(run / "summary.json")["stopped"] == "completed all iterations"
    assert data_files(run) == data_files(single_run(tmp_path, config))


def test_a_sigkilled_run_does_not_block_its_rerun(tmp_path: Path) -> None:
    config, data_files = run_setup(tmp_path)
    cmd = paused_cmd(tmp_path, run_args(config, tmp_path / "runs"), fake_stages=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    deadline = time.monotonic() + 300
    while not (tmp_path / "paused").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
        time.sleep(0.05)
    proc.kill()  # mid-write: the teacher has written its first rows
    proc.wait()
    run = tmp_path / "runs" / "t"
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == proc.pid

    (tmp_path / "go").touch()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    assert data_files(run) == data_files(single_run(tmp_path, config))


# --------------------------------------------------------------------------------------------
# disk full mid-write

LIMITED_SIKED = """
import resource, runpy, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = ["siked", *sys.argv[2:]]
runpy.run_module("siked", run_name="__main__")
"""


def test_disk_full_mid_write_then_rerun(tmp_path: Path) -> None:
    out, single = tmp_path / "teacher", tmp_path / "single"
    samples = out / "samples.jsonl"
    full = subprocess.run(
        [sys.executable, "-c", LIMITED_SIKED, "20000", *teach_args(out)],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert full.returncode == 2, full.stderr
    assert f"siked teach: error: cannot write {samples}: File too large; free some space" in (
        full.stderr
    )
    assert "Traceback" not in full.stderr
    data = samples.read_bytes()
    assert data.endswith(b"\n") and len(data) <= 20000  # whole rows only
    n_before = len(read_jsonl(samples))
    assert 0 < n_before < 36
    assert not (out / "kept.jsonl").exists()

    for d in (out, single):  # space is back: the rerun resumes; a clean run for reference
        siked_ok(teach_args(d))
    rows = read_jsonl(samples)
    assert len(rows) == len(set(keys(rows))) == 36
    assert read_json(out / "stats.json")["resumed_samples"] == n_before
    by_key = dict(zip(keys(rows), rows, strict=True))
    for r in read_jsonl(single / "samples.jsonl"):
        assert by_key[(r["qid"], r["strategy"], r["sample"])] == r
    assert (out / "kept.jsonl").read_text() == (single / "kept.jsonl").read_text()


def test_inherited_lock_must_still_be_held_by_its_holder(tmp_path: Path) -> None:
    from siked.errors import SikedError
    from siked.lock import Holder, inherited

    gone = Holder(directory=str(tmp_path), pid=1, host="elsewhere")
    with pytest.raises(SikedError, match="not held by it any more"), inherited([gone]):
        pass


def test_output_locked_survives_pickling(tmp_path: Path) -> None:
    import pickle

    from siked.lock import Holder, OutputLocked

    e = OutputLocked(tmp_path / "a", Holder(directory=str(tmp_path), pid=7, host="h"))
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and back.holder.pid == 7
