#!/usr/bin/env bash
# The twenty-seventh step (docs/model_quality.md, "a deeper mean network"): the shipped mean network (d60c75dd…, one
# residual block per level, 3.5 M parameters) deepened to two blocks per level (4.9 M; network_growth.py: the added
# blocks start as identities, so the run starts from the shipped function) and trained on with the fifth step's recipe
# on the same 96 patients, bf16 autocast on the CPU; then the shipped residual network +200 steps around the new mean.
# Usage: bash scripts/finetune_deeper.sh [WORK_DIR=runs]   (about 2 h on a 2-core CPU with native bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=647995c INIT=deeper MEAN_RUN=mean22 RESIDUAL_RUN=residual22 \
  MEAN_CONFIG=configs/cpu_residual_mean_deeper.json RESIDUAL_CONFIG=configs/cpu_residual_deeper.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
