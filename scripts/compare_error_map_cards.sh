#!/usr/bin/env bash
# Two cards that differ only in their expected-error map, each evaluated as the model on the same phantom sets (A, P,
# B: dcediff phantom folders), then scripts/compare_error_maps.py with a rule of docs/model_quality.md. A set already
# evaluated for a card is not evaluated again (on a fresh test set: run it once; docs/model_quality.md, "An honest
# protocol"). Usage: bash scripts/compare_error_map_cards.sh CANDIDATE REFERENCE SETS_DIR OUT_DIR RULE
#   SETS_DIR holds A/, P/ and B/; OUT_DIR gets {candidate,reference}_{A,P,B}/metrics.json and comparison.json.
#   CACHE (default runs5/cache) and BASELINE_DATA (default runs5/physiology/A: seed 2050's 32 procedural-A patients,
#   made here when missing) as in scripts/curve_over_k.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CANDIDATE=$1 REFERENCE=$2 SETS=$3 OUT=$4 RULE=$5
D=${D:-.venv/bin/dcediff}
CACHE=${CACHE:-runs5/cache}
BASELINE_DATA=${BASELINE_DATA:-runs5/physiology/A}
for S in A P B; do
  [ -f "$SETS/$S/dataset.json" ] || { echo "no $SETS/$S: expected a dcediff phantom folder" >&2; exit 2; }
done
[ -f "$BASELINE_DATA/dataset.json" ] || \
  $D phantom --cases 32 --seed 2050 --anatomy procedural --domain A --no-dce-series --out "$BASELINE_DATA"
mkdir -p "$OUT"
for SIDE in reference candidate; do
  MODEL=$REFERENCE
  [ "$SIDE" = candidate ] && MODEL=$CANDIDATE
  for S in A P B; do
    [ -f "$OUT/${SIDE}_$S/metrics.json" ] && { echo "$OUT/${SIDE}_$S already evaluated" >&2; continue; }
    $D evaluate --model "$MODEL" --data "$SETS/$S" --cache "$CACHE" --baseline-data "$BASELINE_DATA" --samples 1 \
      --no-fid --no-regression --out "$OUT/${SIDE}_$S"
  done
done
.venv/bin/python scripts/compare_error_maps.py --rule "$RULE" --json "$OUT/comparison.json" \
  --candidate "$OUT"/candidate_{A,P,B}/metrics.json --reference "$OUT"/reference_{A,P,B}/metrics.json
