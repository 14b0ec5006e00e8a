#!/usr/bin/env bash
# Score a model once on fresh phantom sets (A procedural, P real-anatomy, B procedural domain B; generated with
# seeds that no training, validation or tuning used, written beside the numbers in docs/model_quality.md), with other
# models beside it on the same patients for paired differences. Run it once per model and set: never again after
# changing the model (docs/model_quality.md, "An honest protocol").
# Usage: bash scripts/score_fresh_sets.sh MODEL FRESH_DIR OUT_DIR [NAME=MODEL ...]
#   FRESH_DIR holds A/, P/ and B/ (dcediff phantom output folders); OUT_DIR gets {A,P,B}_K1/ with metrics.json and
#   summary.md. FID on A only (the smaller sets give no stable FID). Needs runs/physiology/A (the mean-enhancement
#   baseline's training cases; scripts/finetune_physiology.sh makes it) unless BASELINE_DATA names another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$1 FRESH=$2 OUT=$3
shift 3
D=${D:-.venv/bin/dcediff}
BASELINE_DATA=${BASELINE_DATA:-runs/physiology/A}
COMPARE=()
for c in "$@"; do COMPARE+=(--compare "$c"); done
for set in A P B; do  # all three sets are there before any is scored
  [ -d "$FRESH/$set" ] || { echo "no $FRESH/$set: expected a dcediff phantom folder" >&2; exit 2; }
done
mkdir -p "$OUT"
for set in A P B; do
  if [ -f "$OUT/${set}_K1/metrics.json" ]; then
    echo "$OUT/${set}_K1 already scored: not scoring it again" >&2
    continue
  fi
  FID=(--no-fid)
  [ "$set" = A ] && FID=()
  $D evaluate --model "$MODEL" --data "$FRESH/$set" --cache "${CACHE:-runs/cache}" --baseline-data "$BASELINE_DATA" \
    --samples 1 "${FID[@]}" "${COMPARE[@]}" --out "$OUT/${set}_K1"
  SEED=$(.venv/bin/python -c "import json, sys; print(json.load(open(sys.argv[1]))['seed'])" "$FRESH/$set/dataset.json")
  .venv/bin/python scripts/summarize_evaluation.py "$OUT/${set}_K1/metrics.json" \
    --title "${set}_K1 ($FRESH/$set, seed $SEED)" > "$OUT/${set}_K1/summary.md"
done
echo "scored: $OUT/{A,P,B}_K1/summary.md"
