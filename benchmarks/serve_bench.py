"""Teacher throughput against one and against several replicas of a real server.

Starts ``transformers serve`` replicas of the bundled student on loopback ports (the CPU
threads split evenly between them), sends one warm-up request to each (the server loads the
model on first use), then runs the teacher stage (:func:`siked.teach.teach`, the openai engine,
no request cache) on the same questions and reports rows (teacher samples) per second, tokens
per second and how many requests each replica served.

    .venv/bin/python benchmarks/serve_bench.py --questions 4 --max-tokens 48 --replicas 1,2

Needs the serve extra (``pip install -e '.[serve]'``; ``make setup`` installs it). Run it under
the CPU lock on a shared machine: ``flock /tmp/siked-cpu.lock .venv/bin/python ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from real_server import RealServer

from siked.config import TeacherConfig
from siked.data import load_problems
from siked.engines import make_engine
from siked.machine import machine_info
from siked.teach import teach

STUDENT = "bundled:smollm2-135m-instruct"


def warm_up(servers: list[RealServer]) -> None:
    """One tiny request per server, so that model loading is not timed."""
    for s in servers:
        cfg = TeacherConfig(engine="openai", model=STUDENT, base_url=s.base_url)
        with make_engine(cfg) as e:
            e.generate(["Say hi."], max_tokens=2)


def run_one(replicas: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // replicas)
    servers = [RealServer(threads=threads, log_dir=work) for _ in range(replicas)]
    try:
        for s in servers:
            s.start()
        warm_up(servers)
        cfg = TeacherConfig(
            engine="openai",
            model=STUDENT,
            base_url=[s.base_url for s in servers],
            max_tokens=args.max_tokens,
            concurrency=args.concurrency * replicas,
            request_timeout=600,
            chunk_size=args.questions,
        )
        problems = load_problems("gsm8k", "train", limit=args.questions)
        out = work / f"teacher_{replicas}"
        t0 = time.perf_counter()
        stats = teach(problems, cfg, out, seed=args.seed, progress=False, engine=None)
        seconds = time.perf_counter() - t0
    finally:
        for s in servers:
            s.kill()
    eng = stats["engine_stats"] or {}
    rows = stats["generated"]
    return {
        "replicas": replicas,
        "threads_per_replica": threads,
        "concurrency": args.concurrency * replicas,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds, 4),
        "completion_tokens": eng.get("completion_tokens"),
        "prompt_tokens": eng.get("prompt_tokens"),
        "completion_tokens_per_second": round((eng.get("completion_tokens") or 0) / seconds, 2),
        "served_per_replica": [v["served"] for v in (eng.get("servers") or {}).values()],
        "errors": eng.get("errors"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--questions", type=int, default=4, help="GSM8K training questions")
    p.add_argument("--max-tokens", type=int, default=48, help="teacher.max_tokens")
    p.add_argument("--replicas", default="1,2", help="replica counts to compare")
    p.add_argument("--threads", type=int, default=0, help="threads per replica (0: cores / n)")
    p.add_argument("--concurrency", type=int, default=1, help="requests in flight per replica")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    with tempfile.TemporaryDirectory(prefix="siked-serve-bench-") as tmp:
        for r in (int(x) for x in args.replicas.split(",")):
            res = run_one(r, args, Path(tmp))
            results.append(res)
            print(json.dumps(res), flush=True)
    print(f"\n{'replicas':>8} {'threads':>7} {'rows':>5} {'seconds':>8} {'rows/s':>7} {'tok/s':>6}")
    for r in results:
        print(
            f"{r['replicas']:>8} {r['threads_per_replica']:>7} {r['rows']:>5} {r['seconds']:>8.1f} "
            f"{r['rows_per_second']:>7.3f} {r['completion_tokens_per_second']:>6.1f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine_info(), "results": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
