#!/usr/bin/env bash
# The twelfth step (docs/model_quality.md, "the gland weighed like the lesion"): the shipped model (bda323aa…, shipped
# by commit 1be43c9) fine-tuned on the ninth step's 240 training patients (scripts/finetune_more_patients.sh makes
# them) with the gland's loss weight raised to the lesion's (+30 each in the mean, +8 each in the residual), so that
# an L1 loss no longer pays the model to draw the whole gland lesion-like: mean +1500 steps, residual +200;
# validation: the same 18 patients as runs/val6. Only the weights differ from the ninth step (runs/mean10).
# Usage: bash scripts/finetune_balanced_gland.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
GENERATE_ONLY=1 bash scripts/finetune_more_patients.sh "$W"   # data_more/ and more/split.json
SHIPPED=1be43c9 INIT=balanced MEAN_RUN=mean13 RESIDUAL_RUN=residual13 DATA=data_more SPLIT=more/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_balanced_gland.json RESIDUAL_CONFIG=configs/cpu_residual_balanced_gland.json \
  exec bash scripts/finetune_lesions.sh "$W"
