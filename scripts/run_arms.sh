#!/usr/bin/env bash
# Run (or resume) a set of arms, each an ordinary `siked run` of CONFIG_DIR/ARM.yaml, then copy
# their evidence into OUT and write the comparison tables and the mechanism figure there.
# The wrappers scripts/cpu_table.sh and scripts/experiment.sh call it; by hand:
#
#   bash scripts/run_arms.sh run|collect CONFIG_DIR RUNS OUT BASELINE ARM...
#
# run: every arm in order, then collect; collect: only copy and tabulate what is there.
# Each arm is resumable: stop at any point and start again, it continues where it stopped.
# Each arm reuses (`siked run --reuse`) what the arms before it made with the same inputs.
# Evidence copied (what reproduces the tables without the weights): each run's config.yaml,
# manifest.json, summary.json, siked.log, teacher/stats.json, per iteration stats.json,
# sample_stats.json, model/train_log.json and eval/ (eval.json, predictions.jsonl), the report.
# Written in OUT: table.md (`siked compare --ci`), paired.md (every arm against BASELINE,
# question by question: `siked compare --paired`), dynamics.png (`siked compare --plot`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIKED=${SIKED:-.venv/bin/siked}
PY=${PY:-.venv/bin/python}
mode=$1 configs=$2 runs=$3 out=$4 baseline=$5
shift 5
arms=("$@")

if [ "$mode" = run ]; then
  for arm in "${arms[@]}"; do
    # stages another arm already made with the same inputs are copied, not recomputed: the
    # teacher's rationales, and iteration 0's student that SIKeD's arms share with combined
    # distillation (and the mixing variants of one bias with each other)
    reuse=()
    for other in "$runs"/*/; do
      other=${other%/}
      [ "$other" != "$runs/$arm" ] && [ -f "$other/manifest.json" ] && reuse+=(--reuse "$other")
    done
    /usr/bin/time -f "$arm: %e s wall, peak RSS %M KB" "$SIKED" run "$configs/$arm.yaml" "${reuse[@]}"
    # PRUNE_OPENVINO=1: a finished arm's OpenVINO copies of its models go (half its disk; the
    # engine converts a merged model again whenever one is needed)
    if [ "${PRUNE_OPENVINO:-0}" = 1 ]; then
      rm -rf "$runs/$arm"/iter_*/model/merged.openvino
    fi
  done
elif [ "$mode" != collect ]; then
  echo "usage: run_arms.sh run|collect CONFIG_DIR RUNS OUT BASELINE ARM..." >&2
  exit 2
fi

mkdir -p "$out"
present=()
for arm in "${arms[@]}"; do
  src="$runs/$arm" dst="$out/$arm"
  if [ ! -d "$src" ]; then  # evidence copied before (the run's weights since deleted) stays
    [ -d "$dst" ] && present+=("$dst")
    continue
  fi
  rm -rf "$dst"
  (cd "$src" && find . \( -name config.yaml -o -name manifest.json -o -name summary.json \
      -o -name siked.log -o -path ./teacher/stats.json -o -path './iter_*/stats.json' \
      -o -name sample_stats.json -o -name train_log.json -o -path '*/eval/*.json' \
      -o -path '*/eval/predictions.jsonl' -o -path './report/*' \) ! -name .siked.lock -type f -print0 |
    xargs -0 -I{} install -D -m 644 {} "$ROOT/$dst/{}")
  present+=("$dst")
done
# the evidence of arms not named this time (an earlier `ARMS=...` run, or one whose weights are
# gone) stays in the tables, after the named ones
for dst in "$out"/*/; do
  dst=${dst%/}
  [ -f "$dst/manifest.json" ] || continue
  [[ " ${present[*]} " == *" $dst "* ]] || present+=("$dst")
done
[ ${#present[@]} -gt 0 ] || { echo "no arm has a run directory in $runs or evidence in $out yet"; exit 0; }
"$SIKED" compare "${present[@]}" --ci --out "$out/table.md" --plot "$out/dynamics.png"
# every arm against the baseline, question by question
if [ -d "$out/$baseline" ]; then
  paired=("$out/$baseline")
  for dst in "${present[@]}"; do [ "$dst" != "$out/$baseline" ] && paired+=("$dst"); done
  "$SIKED" compare "${paired[@]}" --paired --out "$out/paired.md"
fi
"$PY" scripts/readme_blocks.py README.md   # the README's generated blocks
du -sh "$out"
