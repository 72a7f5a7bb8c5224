#!/usr/bin/env bash
# Premise probe (issue 30): for each regime in configs/cpu/probe/, `siked run` until iteration
# 0's self-generated samples are judged (iter_00/sample done), then stop the run; then tabulate
# the share of correct own samples per regime into results/premise-probe/.
#
#   bash scripts/premise_probe.sh                 # run (or resume) every regime, then collect
#   bash scripts/premise_probe.sh collect         # only tabulate what is there (and refresh
#                                                 # the README's block)
#   REGIMES="easy400-pot-e4" bash scripts/premise_probe.sh
#
# Each regime is an ordinary resumable run in runs/probe/NAME: stopping this script and starting
# it again continues where it stopped; `siked run configs/cpu/probe/NAME.yaml` continues the run
# past iteration 0 (into the SIKeD iterations) whenever wanted.
set -euo pipefail
cd "$(dirname "$0")/.."
SIKED=${SIKED:-.venv/bin/siked}
PY=${PY:-.venv/bin/python}
read -r -a REGIMES <<< "${REGIMES:-easy400-pot-e2 easy400-pot-e4 easy400-pot-full-e2 easy400-none-e2 easy1000-pot-e2}"

sample_done() {  # iter_00/sample of run $1 is done
  "$PY" - "$1" <<'PY'
import json, sys
try:
    m = json.load(open(f"{sys.argv[1]}/manifest.json"))
except (OSError, ValueError):
    sys.exit(1)
sys.exit(0 if m["stages"].get("iter_00/sample", {}).get("status") == "done" else 1)
PY
}

if [ "${1:-run}" = run ]; then
  for r in "${REGIMES[@]}"; do
    run=runs/probe/$r
    if sample_done "$run"; then echo "$r: iteration 0 sampled already"; continue; fi
    echo "$r: started $(date -u +%FT%TZ)"
    setsid /usr/bin/time -f "$r: %e s wall, peak RSS %M KB" "$SIKED" run "configs/cpu/probe/$r.yaml" &
    pid=$!
    # stopping this script stops the run too (and the script: no next regime is started)
    trap 'kill -TERM -- -$pid 2>/dev/null || true' EXIT
    trap 'kill -TERM -- -$pid 2>/dev/null; exit 143' INT TERM
    while kill -0 "$pid" 2>/dev/null; do
      if sample_done "$run"; then
        kill -TERM -- -"$pid" 2>/dev/null || true  # siked stops cleanly; a rerun resumes
        break
      fi
      sleep 20
    done
    wait "$pid" || true
    trap - EXIT INT TERM
    echo "$r: stopped $(date -u +%FT%TZ)"
  done
fi
"$PY" scripts/premise_probe.py runs/probe results/premise-probe "${REGIMES[@]}"
"$PY" scripts/readme_blocks.py README.md   # the README's probe table
