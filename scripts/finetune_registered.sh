#!/usr/bin/env bash
# The seventeenth step (docs/model_quality.md, "the DCE frames registered to the T1-pre"): the shipped model
# (bda323aa…, files of commit d275eea) fine-tuned with the fifth step's recipe on the same 96 patients, whose targets
# are preprocessed with the current registration (the frames through the T1-pre; cache version 3 for STEP=17, the
# 80 mm sphere of the T1-pre and ADC, cache version 4, for STEP=18). The cache of a fresh machine is rebuilt on the way.
# Mean +1500 steps, residual +200 around the new mean: runs mean$STEP, residual$STEP.
# Usage: [STEP=18] bash scripts/finetune_registered.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU once cached)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
STEP=${STEP:-17}
mkdir -p "$W"
sed "s|runs/mean17/|runs/mean$STEP/|" configs/cpu_residual_registered.json > "$W/residual$STEP.base.json"
SHIPPED=d275eea INIT=registered MEAN_RUN=mean$STEP RESIDUAL_RUN=residual$STEP \
  MEAN_CONFIG=configs/cpu_residual_mean_registered.json RESIDUAL_CONFIG="$W/residual$STEP.base.json" \
  exec bash scripts/finetune_lesions.sh "$W"
