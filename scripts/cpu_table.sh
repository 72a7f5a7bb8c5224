#!/usr/bin/env bash
# The CPU-scale Table 1 (configs/cpu/): every arm with `siked run`, then the evidence copied
# into results/cpu-table/ and the comparison tables written there (scripts/run_arms.sh).
#
#   bash scripts/cpu_table.sh            # run (or resume) every arm, then collect
#   bash scripts/cpu_table.sh collect    # only collect and tabulate what is there
#
# The tables go to results/cpu-table/{table,paired}.md and into the README's Results section
# (the blocks between <!-- BEGIN/END results/cpu-table/... --> markers: scripts/readme_blocks.py).
# ARMS="untrained distill-combined" bash scripts/cpu_table.sh collect: only those arms.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a ARMS <<< "${ARMS:-untrained distill-combined siked-pot distill-pot distill-cot distill-l2m siked-none}"
exec bash scripts/run_arms.sh "${1:-run}" configs/cpu runs/cpu-table results/cpu-table \
  distill-combined "${ARMS[@]}"
