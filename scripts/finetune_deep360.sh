#!/usr/bin/env bash
# The forty-third step (docs/model_quality.md, "more patients, longer"): the shipped mean of the forty-second step
# (88be68ee…'s, regression 002004ce…, commit 307b25f) trained 2000 more steps with the forty-second step's recipe on
# 360 version-4 patients: the 240 of scripts/make_data_deep240.sh and 120 never trained on (seeds 2070 procedural A 48,
# 2071 real anatomy 48, 2072 procedural B 24, cases case_73xx–case_75xx), the same 18 validation patients; then the
# shipped residual network +200 steps around it.
# Usage: bash scripts/finetune_deep360.sh [WORK_DIR=runs]   (about 30 min of data generation and preprocessing on a
# fresh WORK_DIR, then about 30 min of training on a 2-core CPU with native bf16). Then the card as in
# scripts/finetune_lipid.sh (build_candidate_card.py with WORK_DIR/residual43 WORK_DIR/mean43, add_input_statistics.py).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/make_data_deep240.sh "$W"
bash scripts/extend_patient_set.sh "$W" "$W/data_deep240" "$W/deep240/split.json" deep360 360 18 73 \
  "m3A 2070 48 procedural A" "m3P 2071 48 prostatex A" "m3B 2072 24 procedural B"
[ "${GENERATE_ONLY:-0}" = 1 ] && exit 0   # the data alone (scripts/finetune_deep480.sh)
SHIPPED=307b25f INIT=ship42 MEAN_RUN=mean43 RESIDUAL_RUN=residual43 DATA=data_deep360 SPLIT=deep360/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_deep360.json RESIDUAL_CONFIG=configs/cpu_residual_deep360.json \
  WORKERS=${WORKERS:-2} exec bash scripts/finetune_lesions.sh "$W"
