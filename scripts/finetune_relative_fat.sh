#!/usr/bin/env bash
# The eleventh step (docs/model_quality.md, "relative enhancement with real-bright fat"): the tenth step's candidate
# (scripts/finetune_relative.sh: runs/mean11, runs/residual11; run it first) fine-tuned further under the relative
# parameterization with the fat_gain augmentation (training/augmentation.py: the label map's fat up to 2× brighter,
# T1-pre and DCE alike, so bright fat is seen not to enhance): mean +1500 steps, residual +200, on the ninth step's
# 240 training patients; validation: the same 18 patients as runs/val6.
# Usage: bash scripts/finetune_relative_fat.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
mkdir -p "$W/relfat/init"
for pair in "mean11:dcediff_cpu_phantom_regression" "residual11:dcediff_cpu_phantom"; do
  for ext in safetensors json; do
    cp -n "$W/${pair%%:*}/model.$ext" "$W/relfat/init/${pair#*:}.$ext"
  done
done
SHIPPED=none INIT=relfat MEAN_RUN=mean12 RESIDUAL_RUN=residual12 DATA=data_more SPLIT=more/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_relative_fat.json RESIDUAL_CONFIG=configs/cpu_residual_relative_fat.json \
  exec bash scripts/finetune_lesions.sh "$W"
