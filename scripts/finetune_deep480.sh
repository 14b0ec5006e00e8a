#!/usr/bin/env bash
# The forty-fifth step (docs/model_quality.md): the forty-fourth step's recipe once more, on more patients. The shipped
# mean (722997de…, commit dbdb837) trained 2000 steps with the forty-third step's recipe on 480 version-4 patients (the
# 360 of scripts/finetune_deep360.sh and 120 never trained on: seeds 2080 procedural A 40, 2081 real anatomy 40, 2082
# procedural B 40, cases case_76xx–case_78xx; the same 18 validation patients); then half of it and half the shipped
# mean, and the shipped residual network +200 steps around that average.
# Usage: bash scripts/finetune_deep480.sh [WORK_DIR=runs]   (on a WORK_DIR that holds the forty-third step's data,
# about 10 min of generation and preprocessing and 15 min of training; on a fresh one add the ~40 min of that data).
# Then the card: scripts/build_candidate_card.py WORK_DIR/residual45 WORK_DIR/mean45avg, and
# scripts/add_input_statistics.py with --data WORK_DIR/data_deep480 --split WORK_DIR/deep480/split.json.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
[ -f "$W/deep360/split.json" ] || GENERATE_ONLY=1 bash scripts/finetune_deep360.sh "$W"
bash scripts/extend_patient_set.sh "$W" "$W/data_deep360" "$W/deep360/split.json" deep480 480 18 76 \
  "m4A 2080 40 procedural A" "m4P 2081 40 prostatex A" "m4B 2082 40 procedural B"
MEAN_ONLY=1 SHIPPED=dbdb837 INIT=ship44 MEAN_RUN=mean45 RESIDUAL_RUN=residual45 DATA=data_deep480 SPLIT=deep480/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_deep480.json RESIDUAL_CONFIG=configs/cpu_residual_deep480.json \
  WORKERS=${WORKERS:-2} bash scripts/finetune_lesions.sh "$W"
exec bash scripts/average_then_residual.sh "$W" "$W/ship44/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/mean45/model.safetensors" mean45avg residual45 configs/cpu_residual_deep480.json data_deep480 deep480/split.json
