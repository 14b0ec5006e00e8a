#!/usr/bin/env bash
# The data of the CPU fine-tunes since the forty-fifth step, without any training: the 480 training patients of
# scripts/finetune_deep480.sh (WORK_DIR/data_deep480, split WORK_DIR/deep480/split.json, the same 18 validation
# patients) and the 60 validation patients of the forty-seventh step on (seeds 99201 procedural A 24, 99202 real
# anatomy 18, 99203 procedural B 18; WORK_DIR/data_val15). As a by-product WORK_DIR/physiology/A (seed 2050) holds the
# 32 patients the mean-enhancement baseline of `dcediff evaluate --baseline-data` is fitted on.
# A fresh checkout has none of it (run folders are not tracked); every group already generated is skipped.
# Usage: bash scripts/make_data_deep480.sh [WORK_DIR=runs]   (about 40 min on a 2-core CPU: the two chains run side by
# side, one core each)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/generate_phantom_groups.sh "$W" "$W/data_val15" 87 "v15A 99201 24 procedural A" \
  "v15P 99202 18 prostatex A" "v15B 99203 18 procedural B" > "$W/make_val15.log" 2>&1 &
VAL=$!
GENERATE_ONLY=1 bash scripts/finetune_deep360.sh "$W"
bash scripts/extend_patient_set.sh "$W" "$W/data_deep360" "$W/deep360/split.json" deep480 480 18 76 \
  "m4A 2080 40 procedural A" "m4P 2081 40 prostatex A" "m4B 2082 40 procedural B"
wait "$VAL"
echo "data_deep480: $(ls "$W/data_deep480" | wc -l) cases; data_val15: $(ls "$W/data_val15" | wc -l) cases"
