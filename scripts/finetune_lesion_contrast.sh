#!/usr/bin/env bash
# The seventh step (docs/model_quality.md, "a loss on the lesion's contrast"): the shipped model (bda323aa…,
# regression d60c75dd…, commit 1be43c9) fine-tuned on the same 96 generator-version-2 patients with the fifth step's
# per-voxel lesion weight (+30, lesion slices 0.6) plus the lesion-contrast loss (lesion_contrast_weight 1, ring 3
# pixels): mean +1500 steps (configs/cpu_residual_mean_contrast.json), residual +200 around it. The recipe is the
# fifth step's (scripts/finetune_lesions.sh) with other inputs; re-running it resumes from the checkpoints.
# Usage: bash scripts/finetune_lesion_contrast.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=1be43c9 INIT=contrast MEAN_RUN=mean8 RESIDUAL_RUN=residual8 \
  MEAN_CONFIG=configs/cpu_residual_mean_contrast.json RESIDUAL_CONFIG=configs/cpu_residual_contrast.json \
  exec bash scripts/finetune_lesions.sh "$@"
