#!/usr/bin/env bash
# The fourteenth step (docs/model_quality.md, "an annealed fine-tune"): the shipped model (bda323aa…, its card at
# residual temperature 0.1; files from commit 9fb3479) fine-tuned once more with the fifth step's recipe on the same
# 96 patients, but with the learning rate annealed (half cosine from 1e-4 to 0) instead of constant: every run so far
# ended at a constant rate. Mean +1500 steps, residual +200 around the new mean (also annealed).
# Usage: bash scripts/finetune_anneal.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU, data generated if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=9fb3479 INIT=anneal MEAN_RUN=mean14 RESIDUAL_RUN=residual14 \
  MEAN_CONFIG=configs/cpu_residual_mean_anneal.json RESIDUAL_CONFIG=configs/cpu_residual_anneal.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
