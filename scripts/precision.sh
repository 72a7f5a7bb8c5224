#!/usr/bin/env bash
# What the precision alone changes: issue 30's arms run again on a CPU without native bf16
# (AVX2 only), where `dtype: auto` and `train.bf16: null` compute in float32, against the same
# arms in bf16 on the reference CPU (results/experiment/). Evidence in results/precision/.
#
#   bash scripts/precision.sh run       # the float32 runs (on an AVX2-only CPU), then collect
#   bash scripts/precision.sh collect   # copy their evidence and write the tables
#
# The runs: the untrained student's evaluation (made as runs/experiment/untrained on
# 2026-12-07 and moved to runs/precision/untrained-avx2; its name inside stays `untrained`) and
# distill-pot retrained and evaluated as distill-pot-avx2, both with dtype auto, which
# configs/cpu/experiment/ no longer allows (it pins bf16 since).
set -euo pipefail
cd "$(dirname "$0")/.."
SIKED=${SIKED:-.venv/bin/siked}
PY=${PY:-.venv/bin/python}
RUNS=runs/precision OUT=results/precision BF16=results/experiment
AUTO=(--set train.bf16=null --set sample.dtype=auto --set eval.dtype=auto)

if [ "${1:-collect}" = run ]; then
  "$SIKED" run configs/cpu/experiment/untrained.yaml --name untrained-avx2 --output-dir "$RUNS" \
    "${AUTO[@]}"
  "$SIKED" run configs/cpu/experiment/distill-pot.yaml --name distill-pot-avx2 \
    --output-dir "$RUNS" "${AUTO[@]}"
fi
# the evidence (no weights) and a table of the float32 runs, as for the experiment's arms
bash scripts/run_arms.sh collect configs/cpu/experiment "$RUNS" "$OUT" none untrained-avx2 \
  distill-pot-avx2
{
  echo "Greedy answers of the same student in bf16 (reference CPU, $BF16) and float32 (AVX2):"
  echo
  echo "untrained (bf16: the first 256 validation questions, all that run answered):"
  echo
  "$PY" scripts/prediction_agreement.py "$BF16/untrained/iter_00/eval/predictions.jsonl" \
    "$OUT/untrained-avx2/iter_00/eval/predictions.jsonl" --name bf16 float32
  echo
  echo "distill-pot (each trained in its own precision):"
  echo
  "$PY" scripts/prediction_agreement.py "$BF16/distill-pot/iter_00/eval/predictions.jsonl" \
    "$OUT/distill-pot-avx2/iter_00/eval/predictions.jsonl" --name bf16 float32
} > "$OUT/agreement.md"
"$SIKED" compare "$BF16/distill-pot" "$OUT/distill-pot-avx2" --paired --out "$OUT/paired.md"
cat "$OUT/agreement.md" "$OUT/paired.md"
