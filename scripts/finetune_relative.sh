#!/usr/bin/env bash
# The tenth step (docs/model_quality.md, "the relative-enhancement parameterization"): the shipped model (bda323aa…,
# regression d60c75dd…, commit 1be43c9) fine-tuned with its mean network's output read as *relative* enhancement
# (diffusion.residual: y0 = zero + (zero + 1 + floor) / (reference + floor) · output) instead of additive, on the
# ninth step's 240 training patients (scripts/finetune_more_patients.sh generates them if absent) with the fifth step's
# weights (lesion +30, lesion slices 0.6). Mean +2000 steps (the output's meaning changes, so more than the 1500 of
# a same-meaning fine-tune), residual +200 around the new mean. Validation: the same 18 patients as runs/val6.
# Usage: bash scripts/finetune_relative.sh [WORK_DIR=runs]   (about 60–70 min on a 2-core CPU once the data and
#   the cache exist; else add the ninth step's ~45 min of generation and preprocessing)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
[ -f "$W/more/split.json" ] || GENERATE_ONLY=1 bash scripts/finetune_more_patients.sh "$W"
SHIPPED=1be43c9 INIT=relative MEAN_RUN=mean11 RESIDUAL_RUN=residual11 DATA=data_more SPLIT=more/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_relative.json RESIDUAL_CONFIG=configs/cpu_residual_relative.json \
  exec bash scripts/finetune_lesions.sh "$W"
