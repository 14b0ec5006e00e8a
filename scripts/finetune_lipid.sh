#!/usr/bin/env bash
# The fortieth step (docs/model_quality.md, "the fortieth step"): the shipped mean of the thirty-fourth step
# (df73aafc…'s, regression 21564bcf…, commit 7faf33e) fine-tuned 600 steps at lr 2.5e-5 with the lesion-pattern term
# on the 240 patients of scripts/make_data_deep240.sh regenerated with phantom generator version 4 (fat that does not
# enhance, docs/phantom.md), then the shipped residual network +200 steps around that mean.
# Usage: bash scripts/finetune_lipid.sh [WORK_DIR=runs]   (about 15 min on a 2-core CPU with native bf16, plus about
# 30 min of data generation and preprocessing on a fresh WORK_DIR). Then build and complete the card:
#   .venv/bin/python scripts/build_candidate_card.py WORK_DIR/residual40 WORK_DIR/mean40 --shipped Resources/Models --out DIR
#   .venv/bin/python scripts/add_input_statistics.py DIR/dcediff_cpu_phantom --data WORK_DIR/data_deep240 \
#     --split WORK_DIR/deep240/split.json --cache WORK_DIR/cache   (and the same for DIR/dcediff_cpu_phantom_regression)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
bash scripts/make_data_deep240.sh "$W"
SHIPPED=7faf33e INIT=lipid MEAN_RUN=mean40 RESIDUAL_RUN=residual40 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_lipid_gentle.json RESIDUAL_CONFIG=configs/cpu_residual_lipid.json \
  WORKERS=${WORKERS:-2} exec bash scripts/finetune_lesions.sh "$W"
