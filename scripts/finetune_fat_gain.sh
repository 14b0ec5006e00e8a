#!/usr/bin/env bash
# The eighth step (docs/model_quality.md, "fat as bright as on real exams"): the shipped model (bda323aa…,
# regression d60c75dd…, commit 1be43c9) fine-tuned on the same 96 generator-version-2 patients with the fifth step's
# recipe (lesion weight +30, lesion slices 0.6) plus two augmentations of training/augmentation.py: `fat_gain` 1.0
# (fat up to 2× brighter: real PD series show fat at 1.5–2.1 × muscle where the phantom has 1.3) and `centre_dark`
# 0.5 (a phased array's darker centre, up to 1.5×): mean +1500 steps (configs/cpu_residual_mean_fat_gain.json),
# residual +200 around it (configs/cpu_residual_fat_gain.json). The recipe is the fifth step's
# (scripts/finetune_lesions.sh) with other inputs; re-running it resumes from the checkpoints.
# Usage: bash scripts/finetune_fat_gain.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=1be43c9 INIT=contrast MEAN_RUN=mean9 RESIDUAL_RUN=residual9 \
  MEAN_CONFIG=configs/cpu_residual_mean_fat_gain.json RESIDUAL_CONFIG=configs/cpu_residual_fat_gain.json \
  exec bash scripts/finetune_lesions.sh "$@"
