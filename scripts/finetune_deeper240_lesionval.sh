#!/usr/bin/env bash
# The thirty-first step (docs/model_quality.md, "checkpoints chosen by the lesions"): the thirtieth step's recipe
# (scripts/finetune_deeper240.sh: the deepened shipped mean, 4000 bf16 steps on 240 patients) with another seed and
# the trainer's lesion validation (training/lesion_validation.py): every 250 steps the lesion r of the predicted
# enhancement on the 18 validation patients' lesion slices; the best exported as mean31/best_lesion, and the shipped
# residual network +200 steps around that one.
# Needs WORK_DIR/data_deep240 and WORK_DIR/deep240/split.json (made by scripts/finetune_deeper240.sh; it makes them
# if absent, but then also trains its own run) and WORK_DIR/deeper240/init.
# Usage: bash scripts/finetune_deeper240_lesionval.sh [WORK_DIR=runs]   (about 60 min on a 2-core CPU with native bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
if [ ! -f "$W/deep240/split.json" ]; then
  echo "run scripts/finetune_deeper240.sh $W first (it makes the data and the split)" >&2
  exit 2
fi
SHIPPED=647995c INIT=deeper240 MEAN_RUN=mean31 RESIDUAL_RUN=residual31 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_deeper240_lesionval.json \
  RESIDUAL_CONFIG=configs/cpu_residual_deeper240_lesionval.json \
  exec bash scripts/finetune_lesions.sh "$W"
