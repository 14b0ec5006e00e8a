#!/usr/bin/env bash
# The thirty-third step (docs/model_quality.md, "the lesion pattern and its level"): the thirty-second step's recipe
# (scripts/finetune_lesion_correlation.sh: the shipped mean + the lesion-correlation term at 0.02) with the
# lesion-contrast term at 0.2 beside it, so that the level the correlation term is blind to is priced too; 1200 steps
# (the thirty-second step's best_lesion), seed 3; then the shipped residual network +200 steps around best_lesion.
# Usage: bash scripts/finetune_lesion_correlation_contrast.sh [WORK_DIR=runs]   (about 20 min with the data cached)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/make_data_deep240.sh "$W"
SHIPPED=f62d3cc INIT=lesioncorr MEAN_RUN=mean33 RESIDUAL_RUN=residual33 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_lesion_correlation_contrast.json \
  RESIDUAL_CONFIG=configs/cpu_residual_lesion_correlation_contrast.json WORKERS=${WORKERS:-2} \
  exec bash scripts/finetune_lesions.sh "$W"
