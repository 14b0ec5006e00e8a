#!/usr/bin/env bash
# The sixth step (docs/model_quality.md, "a longer, heavier lesion fine-tune"): the model shipped by the fifth step
# (bda323aa…, regression d60c75dd…, commit 1be43c9) fine-tuned again on the same 96 generator-version-2 patients:
# mean +2000 steps with lesion weight +50 (was +30), lesion slices 0.6 of a batch; residual +200 around the new mean.
# Measured and NOT shipped: worse on validation (prostate r -0.12, lesion r -0.10; docs/model_quality.md). Kept to
# reproduce that result. The recipe is the fifth step's (scripts/finetune_lesions.sh) with other inputs.
# Usage: bash scripts/finetune_lesions_longer.sh [WORK_DIR=runs]   (about 55 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=1be43c9 INIT=lesions2 MEAN_RUN=mean7 RESIDUAL_RUN=residual7 \
  MEAN_CONFIG=configs/cpu_residual_mean_lesions2.json RESIDUAL_CONFIG=configs/cpu_residual_lesions2.json \
  exec bash scripts/finetune_lesions.sh "$@"
