#!/usr/bin/env bash
# The twenty-sixth step (docs/model_quality.md, "the mean trained on the squared error"): the shipped mean network
# (d60c75dd…) fine-tuned with the fifth step's recipe on the same 96 patients for 2000 steps, with the squared error
# in place of L1 (regression_norm "l2": the conditional mean instead of the conditional median), bf16 autocast on
# the CPU; then the shipped residual network +200 steps around the new mean.
# Usage: bash scripts/finetune_l2.sh [WORK_DIR=runs]   (about 30 min on a 2-core CPU with native bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=c099d4a INIT=l2 MEAN_RUN=mean21 RESIDUAL_RUN=residual21 \
  MEAN_CONFIG=configs/cpu_residual_mean_l2.json RESIDUAL_CONFIG=configs/cpu_residual_l2.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
