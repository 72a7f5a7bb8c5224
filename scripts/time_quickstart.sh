#!/usr/bin/env bash
# Times `make quickstart` as the README's table does: a fresh clone of this checkout's HEAD beside
# a link to shared/, an empty home directory (pip's cache, SIKED_CACHE_DIR and the bundled
# student's conversion all start cold), `/usr/bin/time`. Run it with nothing else on the machine.
#
#   bash scripts/time_quickstart.sh            # writes results/quickstart-timing/DATE-COMMIT/
#
# The evidence: make.log (everything make quickstart printed), time.txt (/usr/bin/time -v),
# machine.json (siked.machine: CPU model, ISA flags, cores, memory, versions) and summary.json
# (the run's own summary, with its stage times).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=$(cd "${SIKED_SHARED:-../shared}" && pwd)
commit=$(git rev-parse --short HEAD)
out="$ROOT/results/quickstart-timing/$(date -u +%F)-$commit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$ROOT" "$work/main"
ln -s "$SHARED" "$work/shared"
mkdir -p "$work/home" "$out"
(cd "$work/main" && env -u SIKED_CACHE_DIR -u SIKED_DATA_DIR HOME="$work/home" \
  /usr/bin/time -v -o "$out/time.txt" make quickstart) > "$out/make.log" 2>&1
cp "$work/main/runs/quickstart/summary.json" "$out/summary.json"
"$work/main/.venv/bin/python" -c 'import json, siked.machine as m; print(json.dumps(m.machine_info(), indent=2))' > "$out/machine.json"
grep -E "Elapsed|Maximum resident" "$out/time.txt"
echo "evidence: $out"
