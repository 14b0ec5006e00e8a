#!/usr/bin/env bash
# The fifteenth step (docs/model_quality.md, "a 2.5D mean network"): the shipped mean network (d60c75dd…, 2D) widened
# to read the conditions of the slices above and below as well (context_slices 1; the neighbours' input weights start
# at zero, so the run starts from the shipped function) and fine-tuned with the fifth step's recipe on the same 96
# patients for 2000 steps; then the shipped residual network +200 steps around the new mean (it stays 2D).
# Usage: bash scripts/finetune_context.sh [WORK_DIR=runs]   (about 50 min on a 2-core CPU, data generated if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=d275eea INIT=context MEAN_RUN=mean15 RESIDUAL_RUN=residual15 \
  MEAN_CONFIG=configs/cpu_residual_mean_context.json RESIDUAL_CONFIG=configs/cpu_residual_context.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
