"""The run manifest: every stage with its status, input/output hashes, seed and timings.

A stage is *done* when the manifest says so **and** its recorded input hash equals the hash the
current run would feed it. Anything else (never started, killed while running, or its inputs
changed under ``--force``) is (re)run; the stages themselves resume from their partial files.
The manifest is rewritten atomically after every change, so a SIGKILL leaves it consistent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from siked.io import atomic_write_json, read_json, sha256_file, sha256_json
from siked.lock import LOCK_NAME
from siked.machine import library_versions, machine_info, native_bf16

#: the clock of the timings (a test replaces it)
monotonic = time.monotonic


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def same_inputs(old: Any, new: Any, defaults: Any) -> bool:
    """True when ``new`` equals ``old`` but for keys ``old`` lacks whose value in ``new`` is
    their value in ``defaults`` (at the same path): a key siked gained after the stage ran, left
    at its default, is no input. Any other difference, a removed key included, is.

    >>> same_inputs({"a": 1}, {"a": 1, "b": 0}, {"b": 0})
    True
    >>> same_inputs({"a": 1}, {"a": 1, "b": 2}, {"b": 0})
    False
    >>> same_inputs({"s": {"t": 0.7}}, {"s": {"t": 0.7, "n": None}}, {"s": {"n": None}})
    True
    >>> same_inputs({"a": 1, "b": 0}, {"a": 1}, {"b": 0})
    False
    """
    if isinstance(old, dict) and isinstance(new, dict):
        d = defaults if isinstance(defaults, dict) else {}
        if any(k not in new for k in old):
            return False
        for k, v in new.items():
            if k not in old:
                if k not in d or d[k] != v:
                    return False
            elif not same_inputs(old[k], v, d.get(k)):
                return False
        return True
    return bool(old == new)


def hash_path(path: Path) -> str | None:
    """sha256 of a file, or of a directory's (relative name, file hash) listing; None if absent.

    A directory's listing skips ``checkpoints/`` and lock files (:mod:`siked.lock`).
    """
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and "checkpoints" not in p.parts and p.name != LOCK_NAME
        )
        return sha256_json([[str(p.relative_to(path)), sha256_file(p)] for p in files])
    return None


def precision_change(invocations: list[dict[str, Any]], auto: bool) -> str | None:
    """What to tell a run resumed on a CPU of the other precision, else None: under
    ``dtype: auto`` / ``train.bf16: null`` (``auto``) a CPU with native bf16 computes in bf16 and
    one without in float32, so the stages from now on compute in another precision than the
    ones before (a stage cut off half-way mixes both). Invocations recorded without their
    instruction sets are not compared.

    >>> precision_change([{"isa": ["avx512_bf16"]}, {"isa": ["avx2"]}], auto=True)[:52]
    'this run started on a CPU with native bf16 and resum'
    >>> precision_change([{"isa": ["avx512_bf16"]}, {"isa": ["avx2"]}], auto=False) is None
    True
    """
    known = [native_bf16(inv["isa"]) for inv in invocations if inv.get("isa") is not None]
    if not auto or len(known) < 2 or known[-1] in known[:-1]:
        return None
    before, now = ("with", "without") if known[0] else ("without", "with")
    return (
        f"this run started on a CPU {before} native bf16 and resumes on one {now}: with "
        "train.bf16 null or an engine's dtype auto, what it computes from now on is in "
        f"{'float32' if known[0] else 'bf16'} where it was in {'bf16' if known[0] else 'float32'}"
        " (answers change question by question; a stage cut off half-way mixes both). Pin "
        "train.bf16 and the dtypes in the config to keep one precision"
    )


class Manifest:
    """``manifest.json`` of a run directory.

    Each opening is one invocation of the run: ``invocations`` lists them (start, seconds,
    CPU and its instruction sets); an invocation's seconds are brought up to date at every
    save, so one that was killed counts until its last change of the manifest.
    """

    def __init__(
        self,
        path: Path,
        name: str,
        config_hash: str,
        clock: Callable[[], float] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        # the config's default values (a dump of it): the inputs of a stage recorded before a
        # key existed match inputs holding that key at its default (:func:`same_inputs`)
        self.defaults = defaults or {}
        self._clock = clock or monotonic
        self._t0 = self._clock()
        if path.exists():
            self.data: dict[str, Any] = read_json(path)
        else:
            self.data = {"name": name, "created": now_iso(), "stages": {}}
        self.data["name"] = name
        self.data["config_hash"] = config_hash
        self.data["versions"] = library_versions()
        self.data.setdefault("stages", {})
        self.data.setdefault("best_iteration", None)
        self.data.setdefault("stopped", None)
        self.data["machine"] = machine_info()
        self.data.setdefault("invocations", [])
        machine = self.data["machine"]
        self.data["invocations"].append(
            {
                "started": now_iso(),
                "seconds": 0.0,
                "cpu": machine["cpu"],
                # the instruction sets decide what dtype auto computes in (bf16 or float32)
                "isa": machine.get("isa"),
            }
        )
        self.save()

    def save(self) -> None:
        self.data["invocations"][-1]["seconds"] = round(self._clock() - self._t0, 1)
        atomic_write_json(self.path, self.data)

    def timing(self) -> dict[str, Any]:
        """``{"seconds": total over the invocations, "invocations": [seconds of each]}``,
        this one up to now (what a run's ``summary.json`` reports)."""
        self.save()
        each = [float(inv["seconds"]) for inv in self.data["invocations"]]
        return {"seconds": round(sum(each), 1), "invocations": each}

    def stage(self, key: str) -> dict[str, Any]:
        return dict(self.data["stages"].get(key, {}))

    def _same(self, st: dict[str, Any], inputs: str | dict[str, Any]) -> bool:
        """Whether stage record ``st`` was made with ``inputs`` (a dict, or its hash)."""
        if isinstance(inputs, str):
            return bool(st.get("inputs_hash") == inputs)
        if st.get("inputs_hash") == sha256_json(inputs):
            return True
        recorded = st.get("inputs")
        # compared as the manifest stores them (JSON: tuples become lists)
        return isinstance(recorded, dict) and same_inputs(
            recorded, json.loads(json.dumps(inputs)), self.defaults
        )

    def is_done(self, key: str, inputs: str | dict[str, Any]) -> bool:
        """``key`` finished with these inputs (a dict, or its :func:`sha256_json` hash)."""
        st = self.data["stages"].get(key)
        return bool(st and st.get("status") == "done" and self._same(st, inputs))

    def changed(self, key: str, inputs: str | dict[str, Any]) -> bool:
        """True when ``key`` was started before with *different* inputs (a config change)."""
        st = self.data["stages"].get(key)
        return bool(st and not self._same(st, inputs))

    def done_in(self, other: Path, key: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The record of stage ``key`` in the manifest at ``other`` (another run's) when that
        run finished the stage with these inputs, else None."""
        try:
            st = (read_json(other).get("stages") or {}).get(key)
        except (OSError, ValueError):
            return None
        if isinstance(st, dict) and st.get("status") == "done" and self._same(st, inputs):
            return dict(st)
        return None

    def adopt(self, key: str, record: dict[str, Any], source: str, seconds: float) -> None:
        """Record stage ``key`` as done by copying it from another run (``record``: that
        run's record of it; its outputs and info stay, ``seconds`` is the copy's time and
        ``donor_seconds`` the stage's own)."""
        self.data["stages"][key] = {
            **record,
            "reused_from": source,
            "donor_seconds": record.get("seconds"),
            "seconds": round(seconds, 2),
            "finished": now_iso(),
        }
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    @contextmanager
    def running(
        self,
        key: str,
        inputs: dict[str, Any],
        seed: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Mark ``key`` running; on normal exit mark it done with outputs and timing.

        The body may fill the yielded dict: ``outputs`` (name -> path) are hashed at the end,
        ``info`` is stored as is.
        """
        inputs_hash = sha256_json(inputs)
        prev = self.data["stages"].get(key, {})
        record: dict[str, Any] = {
            "status": "running",
            "started": now_iso(),
            "inputs": inputs,
            "inputs_hash": inputs_hash,
            "seed": seed,
            "attempts": int(prev.get("attempts", 0)) + 1,
        }
        self.data["stages"][key] = record
        self.save()
        t0 = self._clock()
        body: dict[str, Any] = {"outputs": {}, "info": {}}
        yield body
        record["status"] = "done"
        record["finished"] = now_iso()
        record["seconds"] = round(self._clock() - t0, 2)
        record["outputs"] = {name: hash_path(Path(p)) for name, p in body["outputs"].items()}
        record["info"] = body["info"]
        self.save()
