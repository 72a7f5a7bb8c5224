"""``siked data``: inspect the datasets (stats, show, path) and fetch missing files."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "inspect datasets: record counts, problems, data directory and checksums"
DESCRIPTION = """\
Inspect the evaluation and training datasets.

  siked data stats [--json]                 record counts (raw, loaded, skipped) per split
  siked data show NAME[:SPLIT][:LIMIT] [--split S] [--limit N]
                                            problems as JSON lines {id, question, answer}
  siked data path [--json]                  the data directory and each file's checksum status
  siked data fetch                          download missing files from their public sources

The data directory is --data-dir, else the config's data.dir (--config), else $SIKED_DATA_DIR,
else ../shared/data beside the project, else ~/.cache/siked/data.
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (overrides config and environment)")
    common.add_argument("-c", "--config", help="run config whose data.dir to use")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("stats", parents=[common], help="record counts of every dataset split")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("show", parents=[common], help="print problems as JSON lines")
    p.add_argument("name", help="dataset name, or NAME[:SPLIT][:LIMIT] (e.g. gsm8k:train:5)")
    p.add_argument("--split", help="split (default: test, or the one in NAME)")
    p.add_argument("--limit", type=int, help="first N problems only")

    p = sub.add_parser("path", parents=[common], help="data directory and checksum status")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    sub.add_parser("fetch", parents=[common], help="download missing files into the data directory")


def _data_dir(args: argparse.Namespace) -> str | None:
    if getattr(args, "data_dir", None):
        return str(args.data_dir)
    if getattr(args, "config", None):
        from siked.config import load_config

        return load_config(args.config).data.dir
    return None


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _stats(args: argparse.Namespace, data_dir: str | None) -> int:
    from siked import data

    reports = [data.load_report(n, s, data_dir) for n, s in data.all_splits()]
    if args.json:
        out = {
            "data_dir": str(data.resolve_data_dir(data_dir)),
            "datasets": [{k: v for k, v in r.to_dict().items() if k != "files"} for r in reports],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"data dir: {data.resolve_data_dir(data_dir)}")
    rows = [[r.name, r.split, str(r.raw), str(r.loaded), str(r.n_skipped)] for r in reports]
    print(_table(["dataset", "split", "raw", "loaded", "skipped"], rows))
    if any(r.n_skipped for r in reports):
        print("raw = records in the file(s); loaded = problems with a question and a single")
        print("numeric gold answer; skipped = the rest (names, times, ratios, several answers).")
    return 0


def _show(args: argparse.Namespace, data_dir: str | None) -> int:
    from siked import data
    from siked.config import DatasetSpec
    from siked.errors import DataError
    from siked.text import format_number

    try:
        spec = DatasetSpec.parse(args.name)
    except ValueError as e:
        raise DataError(str(e)) from None
    split = args.split or spec.split
    limit = args.limit if args.limit is not None else spec.limit
    problems = data.load_problems(spec.name, split, limit, data_dir)
    for p in problems:
        row = {"id": p.id, "question": p.question, "answer": format_number(p.answer)}
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


def _path(args: argparse.Namespace, data_dir: str | None) -> int:
    from siked import data

    root, source = data.data_dir_source(data_dir)
    statuses = data.file_status(data_dir)
    ok = all(s.status == "ok" for s in statuses)
    if args.json:
        out: dict[str, Any] = {
            "data_dir": str(root),
            "source": source,
            "ok": ok,
            "files": [
                {"path": s.path, "status": s.status, "sha256": s.sha256, "expected": s.expected}
                for s in statuses
            ],
        }
        print(json.dumps(out, indent=2))
        return 0 if ok else 1
    why = {
        "argument": "--data-dir / data.dir",
        "env": f"${data.ENV_DATA_DIR}",
        "project": "../shared/data beside the project",
        "cache": "default cache",
    }[source]
    print(f"data dir: {root}  (from {why})")
    for s in statuses:
        note = "" if s.status == "ok" else f"  expected sha256 {s.expected}"
        if s.status == "mismatch":
            note += f", got {s.sha256}"
        print(f"{s.status:8}  {s.path}{note}")
    if not ok:
        print(
            f"some files are missing or differ: run `siked data fetch` (needs network) "
            f"or set ${data.ENV_DATA_DIR} to a directory with the published files"
        )
    return 0 if ok else 1


def _fetch(args: argparse.Namespace, data_dir: str | None) -> int:
    from siked import data

    root = data.resolve_data_dir(data_dir)
    rc = 0
    for rel, spec in data.known_files().items():
        existed = (root / rel).is_file()
        if not existed and not spec.url:  # derived here, nothing to download
            print(f"{'missing':8}  {root / rel}: not downloadable, {spec.note}")
            rc = 1
            continue
        data.ensure_file(rel, data_dir, verify=True, download=True)
        print(f"{'ok' if existed else 'fetched':8}  {root / rel}")
    return rc


def run(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    action = {"stats": _stats, "show": _show, "path": _path, "fetch": _fetch}[args.data_command]
    return action(args, data_dir)
