#!/usr/bin/env bash
# The forty-fourth step (docs/model_quality.md): the element-wise average of the shipped mean (002004ce…, commit
# 307b25f) and the forty-third step's mean (scripts/finetune_deep360.sh), then the shipped residual network +200 steps
# around the average (configs/cpu_residual_deep360.json with mean_model set to it).
# Usage: bash scripts/finetune_average360.sh [WORK_DIR=runs]   (the forty-third step's ~60 min on a fresh WORK_DIR,
# then about 3 min). Then build and complete the card as scripts/finetune_lipid.sh says, with WORK_DIR/residual44
# WORK_DIR/mean44 and --data WORK_DIR/data_deep360 --split WORK_DIR/deep360/split.json.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
[ -f "$W/mean43/model.safetensors" ] || bash scripts/finetune_deep360.sh "$W"
exec bash scripts/average_then_residual.sh "$W" "$W/ship42/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/mean43/model.safetensors" mean44 residual44 configs/cpu_residual_deep360.json data_deep360 deep360/split.json
