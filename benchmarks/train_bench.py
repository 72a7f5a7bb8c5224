"""Training throughput and peak memory: siked's trainer vs a plain TRL SFTTrainer.

Both fine-tune the same student with the same LoRA (r=16, alpha=32, all linear projections),
learning rate and data (GSM8K training solutions as CoT rationales, from ``$SIKED_DATA_DIR`` or
``../shared/data``; synthetic ones when absent) for one epoch: ``--steps`` optimizer steps of
``--batch`` examples (``--steps x --batch`` = ``--examples``), packed runs as many steps as their
rows need.

Configurations (each in its own subprocess, so peak RSS is clean):

- ``siked``: ``siked.train.train`` with its defaults: frozen base in bf16 with bf16 autocast
  where the CPU/GPU supports it, loss on the response only, padding-free batches (one flattened
  sequence per batch) with per-example attention (``siked.attention.varlen_sdpa`` on CPU).
- ``plain``: ``trl.SFTTrainer(model=path, args=SFTConfig(...defaults...), peft_config=...)``:
  what TRL does when nothing is set: fp32 weights with bf16 autocast (TRL's default
  ``bf16=True``; on a CPU-only machine it also needs ``use_cpu=True``), padded batches.
- ``siked-padded``: siked with ``padding_free: false``: padded batches grouped by length (the
  default before per-example attention);
- ``siked-packed``: siked with ``packing: true``: examples packed into rows of ``--pack-length``
  tokens, ``--pack-rows`` rows per step (the authors' way; fewer, larger steps);
- ``siked-long-instruction``: siked with the student's first, longer system instruction (90
  tokens instead of 59): what every example pays for it;
- with ``--ablations`` also ``siked-fp32`` (bf16 off), ``siked-gc`` (gradient checkpointing)
  and ``siked-full-lm-head`` (without ``siked.train.lm_head_on_completions``: TRL's fused LM
  head projects every position on a CPU, the prompt's too, and masks them after).

Throughput is real (non-pad) input tokens per second of training steps (model loading, data
preparation and the merge are excluded); ``seconds`` is the epoch's training time, which is what
a shorter prompt saves; peak memory is the process's peak RSS when training ends (before siked
merges). Run::

    .venv/bin/python benchmarks/train_bench.py --examples 64 --steps 8 --batch 8 --repeats 3 \
        [--ablations] [--json out.json]

With ``--repeats N`` the configurations run in N rounds and the table shows the median
tokens/s and seconds and the largest peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_data(path: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` CoT rationale records; returns how many came from GSM8K."""
    data_dir = Path(os.environ.get("SIKED_DATA_DIR") or ROOT.parent / "shared" / "data")
    gsm = data_dir / "gsm8k" / "train.jsonl"
    rows = []
    if gsm.is_file():
        with open(gsm, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= n:
                    break
                d = json.loads(line)
                sol, ans = d["answer"].split("####")
                sol = re.sub(r"<<[^>]*>>", "", sol).strip()
                rows.append((f"gsm8k-train-{i}", d["question"], sol, ans.strip()))
    rng = random.Random(seed)
    while len(rows) < n:  # synthetic fallback
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        q = f"Sam has {a} marbles and finds {b} more. How many marbles does Sam have now?"
        rows.append((f"syn-{len(rows)}", q, f"Sam has {a} + {b} = {a + b} marbles.", str(a + b)))
    real = sum(1 for r in rows if r[0].startswith("gsm8k"))
    with open(path, "w", encoding="utf-8") as f:
        for qid, q, sol, ans in rows:
            rec = {"qid": qid, "question": q, "strategy": "cot", "gold": ans}
            rec["text"] = f"{sol}\nThe answer is {ans}."
            f.write(json.dumps(rec) + "\n")
    return real


#: The student's free instruction before it was shortened (90 SmolLM2 tokens; now 59).
LONG_INSTRUCTION = (
    "Solve the math word problem. First choose a strategy: chain of thought [cot] "
    "(reason step by step), least-to-most [l2m] (split the problem into sub-questions and "
    "answer them in turn), or a Python program [pot] (store the result in a variable "
    "`answer`). Start your response with the tag of the chosen strategy, for example "
    '"[cot]: ", then solve the problem with it.'
)
#: siked-packed: (row length in tokens, rows per step); set by --pack-length / --pack-rows.
PACK = [1024, 2]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(name: str, data: Path, out: Path, steps: int, batch: int, model: str) -> dict:
    """Run one configuration in this process and return its measurements."""
    from siked.config import TrainConfig

    cfg = TrainConfig(
        max_steps=steps, per_device_batch_size=batch, logging_steps=1, save_steps=10_000
    )
    if name.startswith("siked"):
        from siked.train import train

        if name == "siked-fp32":
            cfg = cfg.model_copy(update={"bf16": False})
        elif name == "siked-gc":
            cfg = cfg.model_copy(update={"gradient_checkpointing": True})
        elif name == "siked-padded":
            cfg = cfg.model_copy(update={"padding_free": False})
        elif name == "siked-packed":
            update = {"packing": True, "max_length": PACK[0], "per_device_batch_size": PACK[1]}
            cfg = cfg.model_copy(update={**update, "max_steps": -1, "epochs": 1.0})
        elif name == "siked-full-lm-head":
            import contextlib

            import siked.train

            siked.train.lm_head_on_completions = contextlib.nullcontext  # type: ignore[assignment]
        elif name == "siked-long-instruction":
            from siked import chat

            chat.FREE_INSTRUCTION = LONG_INSTRUCTION
        res = train(data, model, out, cfg.model_copy(update={"save_merged": False}), progress=False)
        m = res.metrics
        return {
            "config": name,
            "tokens": m["tokens_seen"],
            "seconds": m["train_seconds"],
            "tokens_per_second": m["tokens_per_second"],
            "peak_rss_mb": m["peak_rss_mb"],
            "final_loss": m["loss_history"][-1]["loss"],
            "bf16": m["bf16"],
            "padding_free": m["padding_free"],
            "steps": m["global_steps"],
        }

    # plain TRL: everything at its defaults except what both runs must share
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from siked.models import best_device, resolve_model
    from siked.train import _to_dataset, load_examples, lora_config

    timing: dict[str, float] = {}

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            timing["t0"], timing["n0"] = time.perf_counter(), state.num_input_tokens_seen

        def on_train_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            timing["t1"], timing["n1"] = time.perf_counter(), state.num_input_tokens_seen
            timing["rss"] = _peak_rss_mb()

    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=best_device() == "cpu",  # required on a CPU-only machine (TRL defaults bf16=True)
        # measurement only: counts attention_mask (real tokens) of the padded batches
        include_num_input_tokens_seen="non_padding",
    )
    lora = lora_config(cfg)  # siked's own, so that "plain" differs from siked only in the trainer
    trainer = SFTTrainer(
        model=resolve_model(model),
        args=args,
        train_dataset=_to_dataset(load_examples(data)),
        peft_config=lora,
        callbacks=[Timer()],
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    secs = timing["t1"] - timing["t0"]
    tokens = int(timing["n1"] - timing["n0"])
    return {
        "config": name,
        "tokens": tokens,
        "seconds": round(secs, 3),
        "tokens_per_second": tokens / secs,
        "peak_rss_mb": round(timing["rss"], 1),
        "final_loss": losses[-1],
        "bf16": bool(trainer.args.bf16),
        "padding_free": False,
        "steps": trainer.state.global_step,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--model", default="bundled:smollm2-135m-instruct")
    ap.add_argument(
        "--ablations", action="store_true", help="also siked-fp32, siked-gc and siked-full-lm-head"
    )
    ap.add_argument("--repeats", type=int, default=1, help="rounds over all configurations")
    ap.add_argument("--pack-length", type=int, default=1024, help="siked-packed: row tokens")
    ap.add_argument("--pack-rows", type=int, default=2, help="siked-packed: rows per step")
    ap.add_argument("--configs", default=None, help="comma-separated subset to run")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    PACK[:] = [a.pack_length, a.pack_rows]
    if a.worker:
        res = worker(a.worker, Path(a.data), Path(a.out), a.steps, a.batch, a.model)
        print("RESULT " + json.dumps(res), flush=True)
        return 0

    from siked.machine import machine_info
    from siked.models import resolve_model

    resolve_model(a.model)  # convert the bundled student once, before timing anything
    configs = ["plain", "siked", "siked-padded", "siked-packed", "siked-long-instruction"]
    if a.ablations:
        configs += ["siked-fp32", "siked-gc", "siked-full-lm-head"]
    if a.configs:
        configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="siked-train-bench-") as tmp:
        data = Path(tmp) / "data.jsonl"
        real = make_data(data, a.examples)
        print(f"{a.examples} rationales ({real} from GSM8K), {a.steps} steps x batch {a.batch}")
        for rep in range(a.repeats):  # rounds over all configurations: drift hits them alike
            for name in configs:
                cmd = [sys.executable, __file__, "--worker", name, "--data", str(data)]
                cmd += ["--out", str(Path(tmp) / f"{name}-{rep}"), "--steps", str(a.steps)]
                cmd += ["--batch", str(a.batch), "--model", a.model]
                cmd += ["--pack-length", str(a.pack_length), "--pack-rows", str(a.pack_rows)]
                load = os.getloadavg()[0]
                p = subprocess.run(cmd, capture_output=True, text=True, check=False)
                lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
                if p.returncode != 0 or not lines:
                    print(p.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{name} failed")
                r = json.loads(lines[-1][7:])
                r["load_before"] = round(load, 2)
                runs[name].append(r)
                print(
                    f"{name:22s} {r['tokens_per_second']:8.1f} tok/s  {r['tokens']:6d} tokens "
                    f"{r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:7.0f} MB  "
                    f"loss {r['final_loss']:.3f}  (load {load:.2f})",
                    flush=True,
                )
    results = []
    for name in configs:  # medians over the rounds; the worst peak memory
        rs = runs[name]
        r = dict(rs[0])
        r["tokens_per_second"] = statistics.median(x["tokens_per_second"] for x in rs)
        r["seconds"] = statistics.median(x["seconds"] for x in rs)
        r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)
        r["tokens_per_second_all"] = [round(x["tokens_per_second"], 1) for x in rs]
        results.append(r)
    base = next((r for r in results if r["config"] == "plain"), results[0])
    print(
        f"\n| configuration | bf16 | padding-free | steps | tokens | seconds | tokens/s "
        f"| vs {base['config']} | peak RSS (MB) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r["tokens_per_second"] / base["tokens_per_second"]
        print(
            f"| {r['config']} | {r['bf16']} | {r['padding_free']} | {r['steps']} | "
            f"{r['tokens']} | {r['seconds']:.0f} | {r['tokens_per_second']:.0f} | {ratio:.2f}x | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    if a.json:
        Path(a.json).write_text(
            json.dumps({"machine": machine_info(), "results": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
