#!/usr/bin/env bash
# Issue 30's experiment (configs/cpu/experiment/): SIKeD against its baselines in the regime the
# premise probe chose (results/premise-probe/), every arm an ordinary resumable `siked run`.
#
#   bash scripts/experiment.sh            # each arm's budget, then run (or resume) every arm
#   bash scripts/experiment.sh budget     # only the budget: results/experiment/budget.md
#   bash scripts/experiment.sh collect    # only copy the evidence and tabulate what is there
#   ARMS="distill-cot distill-l2m" bash scripts/experiment.sh   # only these (budget printed)
#
# The arms compute in bf16 (configs/cpu/experiment/base.yaml pins it): run them on a CPU with
# AVX512-BF16 or AMX; elsewhere each arm stops at its start (scripts/precision.sh measured why).
# Stop it at any point (or lose the session): the next start continues where it stopped, as long
# as runs/experiment/ is still there. On a fresh machine the unfinished arms start over; the
# finished arms' evidence in results/experiment/ stays in the tables (their weights are gone).
# Evidence goes to results/experiment/ (scripts/run_arms.sh: table.md, paired.md against
# distill-combined, dynamics.png) and the README's generated blocks.
# The main comparison first (combined distillation, SIKeD as the authors run it), then the
# cheap arms (about an hour each at most), so that a partial experiment already answers
# something, then the three SIKeD arms without bias (3.6-6.1 h each: longer than a session, they
# finish by resuming on the same machine). Last, once the SIKeD arms have finished, the best of
# them on validation with a second training seed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CONFIGS=configs/cpu/experiment
OUT=results/experiment
# the premise probe's regime whose measured rates price the arms
REFERENCE=${REFERENCE:-results/premise-probe/easy400-pot-full-e2}
EXPERIMENT="distill-combined siked-all-pot distill-pot untrained distill-cot distill-l2m \
  siked-adaptive-pot siked-self-pot distill-combined-seed2 siked-all-none siked-adaptive-none \
  siked-self-none"
read -r -a ARMS <<< "${ARMS:-$EXPERIMENT}"

mode=${1:-run}
if [ "$mode" = run ] || [ "$mode" = budget ]; then
  mkdir -p "$OUT"
  configs=()
  for arm in "${ARMS[@]}"; do configs+=("$CONFIGS/$arm.yaml"); done
  # budget.md prices the whole experiment; the budget of a chosen few (ARMS=...) is only printed
  if [ "${ARMS[*]}" = "$(echo $EXPERIMENT)" ]; then
    "$PY" scripts/experiment_budget.py "$REFERENCE" "${configs[@]}" > "$OUT/budget.md"
    cat "$OUT/budget.md"
  else
    "$PY" scripts/experiment_budget.py "$REFERENCE" "${configs[@]}"
  fi
  [ "$mode" = budget ] && exit 0
fi
# ~1 GB per iteration of a fully fine-tuned 135M student: half of it is the OpenVINO copy
export PRUNE_OPENVINO=${PRUNE_OPENVINO:-1}
bash scripts/run_arms.sh "$mode" "$CONFIGS" runs/experiment "$OUT" distill-combined "${ARMS[@]}"
# once every SIKeD arm has finished: the best on validation again with another training seed
# (scripts/seed2_of_best.py writes its config), then the tables once more with it
siked_arms=()
for arm in "${ARMS[@]}"; do [[ $arm == siked-* ]] && siked_arms+=("$arm"); done
[ ${#siked_arms[@]} -gt 0 ] || exit 0
best=$("$PY" scripts/seed2_of_best.py runs/experiment "$CONFIGS" "${siked_arms[@]}")
if [ -n "$best" ]; then
  bash scripts/run_arms.sh "$mode" "$CONFIGS" runs/experiment "$OUT" distill-combined \
    "${ARMS[@]}" "$best"
fi
