#!/usr/bin/env bash
# Issue 12's curve over K: the shipped card scored once per number of averaged samples K (1, 2, 4, 8) on one fresh
# phantom set (A procedural 10, P real anatomy 8, B procedural domain B 6), the mean-enhancement baseline fitted on
# seed 2050's 32 procedural-A patients, the regression mean beside the card at K = 1 only; then the table
# (scripts/curve_over_k.py). A set already scored at a K is not scored again (docs/model_quality.md, "An honest
# protocol"). Usage: bash scripts/curve_over_k.sh WORK_DIR SEED_A SEED_P SEED_B [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
W=$1 SA=$2 SP=$3 SB=$4
MODEL=${5:-Resources/Models/dcediff_cpu_phantom.safetensors}
D=${D:-.venv/bin/dcediff}
[ -f "$W/physiology/A/dataset.json" ] || \
  $D phantom --cases 32 --seed 2050 --anatomy procedural --domain A --no-dce-series --out "$W/physiology/A"
for F in "A 10 $SA procedural A" "P 8 $SP prostatex A" "B 6 $SB procedural B"; do set -- $F
  [ -f "$W/fresh/$1/dataset.json" ] || \
    $D phantom --cases "$2" --seed "$3" --anatomy "$4" --domain "$5" --no-dce-series --out "$W/fresh/$1"
done
for K in 1 2 4 8; do
  for S in A P B; do
    OUT="$W/curve/${S}_K$K"
    [ -f "$OUT/metrics.json" ] && { echo "$OUT already scored: not scoring it again" >&2; continue; }
    EXTRA=(--no-fid)
    [ "$K" = 1 ] || EXTRA+=(--no-regression)
    $D evaluate --model "$MODEL" --data "$W/fresh/$S" --cache "$W/cache" --baseline-data "$W/physiology/A" \
      --samples "$K" "${EXTRA[@]}" --out "$OUT"
  done
done
.venv/bin/python scripts/curve_over_k.py "$W/curve"
