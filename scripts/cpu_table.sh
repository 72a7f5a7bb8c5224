#!/usr/bin/env bash
# The CPU-scale Table 1 (configs/cpu/): every arm with `siked run`, then the evidence copied
# into results/cpu-table/ and the comparison tables written there.
#
#   bash scripts/cpu_table.sh            # run (or resume) every arm, then collect
#   bash scripts/cpu_table.sh collect    # only collect and tabulate what is there
#
# The tables go to results/cpu-table/{table,paired}.md and into the README's Results section
# (the blocks between <!-- BEGIN/END results/cpu-table/... --> markers: scripts/readme_blocks.py).
#
# Each arm is an ordinary resumable run in runs/cpu-table/ARM: stop this script at any point
# and start it again, it continues where it stopped. The evidence copied is what reproduces
# the tables without the weights: each run's config.yaml, manifest.json, summary.json,
# siked.log, teacher/stats.json, per iteration stats.json, sample_stats.json,
# model/train_log.json and eval/ (eval.json, predictions.jsonl), and the report.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIKED=${SIKED:-.venv/bin/siked}
RUNS=runs/cpu-table
OUT=results/cpu-table
# ARMS="untrained distill-combined" bash scripts/cpu_table.sh collect: only those arms
read -r -a ARMS <<< "${ARMS:-untrained distill-combined siked-pot distill-pot distill-cot distill-l2m siked-none}"

if [ "${1:-run}" = run ]; then
  for arm in "${ARMS[@]}"; do
    /usr/bin/time -f "$arm: %e s wall, peak RSS %M KB" "$SIKED" run "configs/cpu/$arm.yaml"
  done
fi

mkdir -p "$OUT"
for arm in "${ARMS[@]}"; do
  src="$RUNS/$arm"
  [ -d "$src" ] || continue
  dst="$OUT/$arm"
  rm -rf "$dst"
  (cd "$src" && find . \( -name config.yaml -o -name manifest.json -o -name summary.json \
      -o -name siked.log -o -path ./teacher/stats.json -o -path './iter_*/stats.json' \
      -o -name sample_stats.json -o -name train_log.json -o -path '*/eval/*.json' \
      -o -path '*/eval/predictions.jsonl' -o -path './report/*' \) ! -name .siked.lock -type f -print0 |
    xargs -0 -I{} install -D -m 644 {} "$ROOT/$dst/{}")
done
present=()
for arm in "${ARMS[@]}"; do [ -d "$OUT/$arm" ] && present+=("$OUT/$arm"); done
"$SIKED" compare "${present[@]}" --ci --out "$OUT/table.md"
# every arm against combined distillation, question by question
paired=("$OUT/distill-combined")
for arm in "${ARMS[@]}"; do
  [ "$arm" != distill-combined ] && [ -d "$OUT/$arm" ] && paired+=("$OUT/$arm")
done
[ -d "$OUT/distill-combined" ] && "$SIKED" compare "${paired[@]}" --paired --out "$OUT/paired.md"
"$ROOT/.venv/bin/python" scripts/readme_blocks.py README.md   # the README's Results tables
du -sh "$OUT"
