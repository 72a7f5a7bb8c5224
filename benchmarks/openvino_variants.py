"""generate_bench.py with the openvino engine changed in ways siked does not offer: experiments.

Runs ``benchmarks/generate_bench.py`` (all its arguments after ``--``) with, for its
``openvino`` configurations,

- ``--ir DIR``: a prebuilt OpenVINO IR instead of the engine's own float32 conversion, e.g. int8
  weights: ``.venv-openvino/bin/optimum-cli export openvino -m MODEL --task
  text-generation-with-past --weight-format int8 DIR`` (needs ``pip install nncf`` in that
  environment);
- ``--scheduler JSON``: fields of OpenVINO GenAI's ``SchedulerConfig``, e.g.
  ``'{"max_num_batched_tokens": 2048}'``;
- ``--plugin JSON``: extra CPU plugin properties, e.g. ``'{"DYNAMIC_QUANTIZATION_GROUP_SIZE":
  "0"}'``.

For example (int8 weights, bf16 compute, 200 greedy questions)::

    .venv/bin/python benchmarks/openvino_variants.py --ir /tmp/ov-int8 -- \\
        --model runs/quickstart/iter_02/model/merged --modes greedy --greedy-questions 200 \\
        --configs openvino@bf16:64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ir", type=Path, default=None, help="a prebuilt OpenVINO IR directory")
    ap.add_argument("--scheduler", default=None, help="SchedulerConfig fields (JSON)")
    ap.add_argument("--plugin", default=None, help="extra CPU plugin properties (JSON)")
    ap.add_argument("bench", nargs=argparse.REMAINDER, help="-- then generate_bench.py's args")
    a = ap.parse_args()

    import openvino_genai as og

    import siked.engines.openvino as ov

    if a.ir is not None:
        ir = a.ir
        ov.export_openvino = lambda *args, **kw: ir  # type: ignore[assignment]
    if a.plugin:
        extra = json.loads(a.plugin)
        base = ov.plugin_config
        ov.plugin_config = lambda dtype: {**base(dtype), **extra}  # type: ignore[assignment]
    if a.scheduler:
        fields = json.loads(a.scheduler)
        scheduler = og.SchedulerConfig

        def configured() -> Any:
            c = scheduler()
            for k, v in fields.items():
                setattr(c, k, v)
            return c

        og.SchedulerConfig = configured  # type: ignore[misc]
    import generate_bench

    bench = a.bench[1:] if a.bench[:1] == ["--"] else a.bench
    sys.argv = [generate_bench.__file__, *bench]
    return int(generate_bench.main())


if __name__ == "__main__":
    sys.exit(main())
