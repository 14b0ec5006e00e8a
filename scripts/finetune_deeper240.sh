#!/usr/bin/env bash
# The twenty-seventh step, second run (docs/model_quality.md, "a deeper mean network"): the deepened shipped mean
# (2 residual blocks per level, network_growth.py) trained with the fifth step's recipe on 240 patients instead of 96
# (the 96 of scripts/finetune_physiology.sh, the 72 of seeds 2060–2062 and the 72 generator-version-3 patients of
# runs/data_stack2), 4000 steps in bf16; validation on the same 18 patients as the first run; then the shipped
# residual network +200 steps around the new mean.
# The data: scripts/make_data_deep240.sh (generated if absent).
# Usage: bash scripts/finetune_deeper240.sh [WORK_DIR=runs]   (about 70 min on a 2-core CPU with native bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/make_data_deep240.sh "$W"   # data_deep240/ and deep240/split.json
SHIPPED=647995c INIT=deeper240 MEAN_RUN=mean23 RESIDUAL_RUN=residual23 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_deeper240.json RESIDUAL_CONFIG=configs/cpu_residual_deeper240.json \
  exec bash scripts/finetune_lesions.sh "$W"
