#!/usr/bin/env bash
# The forty-second step (docs/model_quality.md, "targets over the clipped T1-pre"): the shipped mean of the fortieth
# step (8bc747b0…'s, regression b7d34184…, commit b53dbac) trained 600 more steps with the fortieth step's gentle recipe
# and t1pre_clip_consistent on the 240 version-4 patients of scripts/make_data_deep240.sh, then the shipped residual
# network +200 steps around it (it takes its mean's setting).
# Usage: bash scripts/finetune_clip_consistent.sh [WORK_DIR=runs]   (about 15 min on a 2-core CPU with native bf16,
# plus about 30 min of data generation and preprocessing on a fresh WORK_DIR). Then the card as in
# scripts/finetune_lipid.sh (build_candidate_card.py with WORK_DIR/residual42 WORK_DIR/mean42, add_input_statistics.py).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/make_data_deep240.sh "$W"
SHIPPED=b53dbac INIT=clip MEAN_RUN=mean42 RESIDUAL_RUN=residual42 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_clip_consistent.json RESIDUAL_CONFIG=configs/cpu_residual_clip_consistent.json \
  WORKERS=${WORKERS:-2} exec bash scripts/finetune_lesions.sh "$W"
