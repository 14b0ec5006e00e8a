#!/usr/bin/env bash
# The twenty-fifth step (docs/model_quality.md, "an auxiliary zone and lesion segmentation head"): the shipped mean
# network (d60c75dd…) fine-tuned with the fifth step's recipe on the same 96 patients for 2000 steps, with a
# training-only 1×1 head on its last features learning the phantom's peripheral zone, transition zone and lesions
# (cross-entropy + Dice, weight 0.2; training/auxiliary_segmentation.py); then the shipped residual network +200 steps
# around the new mean. The exported model files have the shipped format (the head is not part of them).
# Usage: bash scripts/finetune_aux_segmentation.sh [WORK_DIR=runs]   (about 50 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=c099d4a INIT=aux MEAN_RUN=mean20 RESIDUAL_RUN=residual20 \
  MEAN_CONFIG=configs/cpu_residual_mean_aux_segmentation.json RESIDUAL_CONFIG=configs/cpu_residual_aux_segmentation.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
