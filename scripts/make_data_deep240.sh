#!/usr/bin/env bash
# The 240 training patients of the deeper mean (twenty-seventh step on): the 96 of scripts/finetune_physiology.sh
# (seeds 2050–2052), the 72 of seeds 2060–2062 (data_stack) and the 72 of seeds 2063–2065 (data_stack2), linked
# into WORK_DIR/data_deep240, with the same 18 validation patients (seeds 2053–2055) in WORK_DIR/deep240/split.json.
# Generates whatever of them is absent (about 10 min on 2 cores).
# Usage: bash scripts/make_data_deep240.sh [WORK_DIR=runs]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
GENERATE_ONLY=1 bash scripts/finetune_physiology.sh "$W"   # data_physiology/ and mean5/split.json
bash scripts/generate_phantom_groups.sh "$W" "$W/data_stack" 7 "sA 2060 24 procedural A" "sP 2061 24 prostatex A" \
  "sB 2062 24 procedural B"
bash scripts/generate_phantom_groups.sh "$W" "$W/data_stack2" 70 "s2A 2063 24 procedural A" \
  "s2P 2064 24 prostatex A" "s2B 2065 24 procedural B"
mkdir -p "$W/data_deep240" "$W/deep240"
for src in data_physiology data_stack data_stack2; do
  for d in "$W/$src"/case_*; do ln -sfn "$(realpath "$d")" "$W/data_deep240/$(basename "$d")"; done
done
.venv/bin/python scripts/extend_split.py "$W/mean5/split.json" "$W/data_deep240" "$W/deep240/split.json" \
  --train 240 --validation 18
