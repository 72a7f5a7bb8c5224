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

import pytest

from siked import lock
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


def test_second_process_is_refused_naming_the_holder_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with held_elsewhere(out, "sample") as proc:
        before = tree(tmp_path)
        t0 = time.monotonic()
        with pytest.raises(OutputLocked) as err, output_lock(out, "teach"):
            pytest.fail("entered a directory another process holds")
        assert time.monotonic() - t0 < 5  # refused at once, not after waiting
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
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
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
