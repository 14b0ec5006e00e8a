#!/usr/bin/env bash
# The thirty-second step (docs/model_quality.md, "the lesion pattern as a loss"): the shipped mean (3032d5ac…'s,
# regression 86b876d6…) trained 2000 more steps at half the learning rate on the 240 patients of
# scripts/make_data_deep240.sh with one more loss term, lesion_correlation_weight (1 − Pearson r of the enhancement
# inside the lesion per crop, diffusion/objectives.py), the lesion validation choosing the checkpoint (best_lesion);
# then the shipped residual network +200 steps around that one.
# Usage: bash scripts/finetune_lesion_correlation.sh [WORK_DIR=runs]   (about 60 min on a 2-core CPU with native bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/make_data_deep240.sh "$W"
SHIPPED=f62d3cc INIT=lesioncorr MEAN_RUN=mean32 RESIDUAL_RUN=residual32 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_lesion_correlation.json \
  RESIDUAL_CONFIG=configs/cpu_residual_lesion_correlation.json WORKERS=${WORKERS:-2} \
  exec bash scripts/finetune_lesions.sh "$W"
