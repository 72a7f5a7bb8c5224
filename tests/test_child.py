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
