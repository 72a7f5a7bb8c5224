"""Crash-safe writes (siked.io) when the disk fills up mid-write.

A full disk is simulated with a file-size limit (``RLIMIT_FSIZE``) in a child process: past the
limit a write(2) is cut short and the next one fails with EFBIG, just as ENOSPC does when the
disk is full (Python ignores SIGXFSZ, so the error reaches the code).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from siked.io import JsonlAppender, read_jsonl

LIMITED = """
import json, resource, sys
from siked.io import JsonlAppender, atomic_write_text, OutputWriteError
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
what, path = sys.argv[2], sys.argv[3]
try:
    if what == "append":
        with JsonlAppender(path) as app:
            for i in range(1000):
                app.write({"i": i, "text": "x" * 40})
    else:
        atomic_write_text(path, "y" * 10_000)
except OutputWriteError as e:
    print(json.dumps({"error": str(e), "errno": e.errno}))
"""


def run_limited(limit: int, what: str, path: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, str(limit), what, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_appender_keeps_whole_lines_when_the_disk_fills_then_resumes(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with JsonlAppender(path) as app:
        app.write({"i": -1, "text": "before"})
    result = run_limited(1000, "append", path)
    assert result["errno"] == 27  # EFBIG; ENOSPC (28) takes the same path
    assert str(result["error"]).startswith(f"cannot write {path}: File too large; free some space")
    data = path.read_bytes()
    assert data.endswith(b"\n") and len(data) <= 1000  # the partial last line was cut off
    rows = read_jsonl(path)
    assert [r["i"] for r in rows] == list(range(-1, len(rows) - 1))
    # space is back: appending continues on a clean line
    with JsonlAppender(path) as app:
        app.write({"i": len(rows) - 1, "text": "after"})
    assert [r["i"] for r in read_jsonl(path)] == list(range(-1, len(rows)))


def test_atomic_write_leaves_the_old_file_when_the_disk_fills(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text("old")
    result = run_limited(1000, "atomic", path)
    assert str(result["error"]).startswith(f"cannot write {path}: File too large")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]  # no temp file left
