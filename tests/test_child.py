"""call_in_child: result, exceptions and deaths of a spawned child come back to the parent."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from siked.child import ChildError, RemoteTraceback, call_in_child
from siked.errors import DataError

pytestmark = pytest.mark.timeout(120)


def whoami(x: int, *, y: int) -> tuple[int, int]:
    print(f"child says {x + y}", flush=True)
    return os.getpid(), x + y


def bad_data(path: str) -> None:
    raise DataError(f"{path}: no training records")


def crash() -> None:
    raise ZeroDivisionError("inner detail 1/0")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_error() -> None:
    class Local(Exception):  # a class defined here cannot be pickled by reference
        pass

    raise Local("local failure")


def sleep_and_mark(marker: str) -> None:
    time.sleep(60)
    Path(marker).write_text("finished")


def test_result_comes_back_from_another_process(capfd: pytest.CaptureFixture[str]) -> None:
    pid, total = call_in_child(whoami, 2, y=3)
    assert total == 5 and pid != os.getpid()
    assert "child says 5" in capfd.readouterr().out  # the child writes to our stdout


def test_siked_error_is_raised_as_itself() -> None:
    with pytest.raises(DataError, match=r"^train.jsonl: no training records$"):
        call_in_child(bad_data, "train.jsonl", what="training")


def test_other_errors_keep_the_child_traceback() -> None:
    with pytest.raises(ZeroDivisionError, match="inner detail") as e:
        call_in_child(crash)
    cause = e.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in crash" in cause.text and "ZeroDivisionError" in cause.text


def test_unpicklable_error_is_reported_with_its_traceback() -> None:
    with pytest.raises(ChildError, match=r"training process failed:[\s\S]*local failure"):
        call_in_child(unpicklable_error, what="training")


def test_killed_child_names_the_signal() -> None:
    with pytest.raises(ChildError, match=r"training process \d+ was killed by SIGKILL"):
        call_in_child(die, what="training")


def test_interrupt_in_the_parent_stops_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    # the parent is interrupted while it waits (as by Ctrl-C): the child must not run on
    import multiprocessing.connection as mpc

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mpc.Connection, "recv", interrupted)
    monkeypatch.setattr("siked.child.STOP_GRACE", 5.0)
    with pytest.raises(KeyboardInterrupt):
        call_in_child(sleep_and_mark, str(marker))
    assert not marker.exists()


def write_under_lock(run: str) -> list[int | None]:
    """A stage in the child: locks a directory inside ``run`` (as ``train`` locks its out_dir);
    returns the pids of the locks it worked under."""
    from siked.lock import held, output_lock

    model = Path(run) / "iter_00" / "model"
    with output_lock(model, "train"):
        (model / "done").write_text("ok")
        return [h.pid for h in held()]


def test_child_works_under_the_lock_its_parent_holds(tmp_path: Path) -> None:
    """The loop holds the run directory's lock and trains in a child: the child's stage lock
    on a directory inside the run is covered by the parent's lock, not refused by it."""
    from siked.lock import holder_of, output_lock

    run = tmp_path / "run"
    with output_lock(run, "run"):
        pids = call_in_child(write_under_lock, str(run), what="training")
        assert pids == [os.getpid()]  # the child wrote under its parent's lock, took none
        assert (run / "iter_00" / "model" / "done").read_text() == "ok"
        holder = holder_of(run)
        assert holder is not None and holder.pid == os.getpid()  # still held by the parent
    assert holder_of(run) is None


def test_child_without_a_parent_lock_locks_for_itself(tmp_path: Path) -> None:
    (pid,) = call_in_child(write_under_lock, str(tmp_path / "run"))
    assert pid is not None and pid != os.getpid()
