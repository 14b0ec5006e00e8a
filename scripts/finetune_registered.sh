#!/usr/bin/env bash
# The seventeenth step (docs/model_quality.md, "the DCE frames registered to the T1-pre"): the shipped model
# (bda323aa…, files of commit d275eea) fine-tuned with the fifth step's recipe on the same 96 patients, whose targets
# are now preprocessed with the frames registered to the T1-pre (training cache version 3; the cache of a fresh machine
# is rebuilt on the way). Mean +1500 steps, residual +200 around the new mean.
# Usage: bash scripts/finetune_registered.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU once the cache is built)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=d275eea INIT=registered MEAN_RUN=mean17 RESIDUAL_RUN=residual17 \
  MEAN_CONFIG=configs/cpu_residual_mean_registered.json RESIDUAL_CONFIG=configs/cpu_residual_registered.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
