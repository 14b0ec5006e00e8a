#!/usr/bin/env bash
# The forty-sixth step (docs/model_quality.md): a soup of two fine-tunes. The forty-fifth step's 2000-step fine-tune of
# the shipped mean (722997de…, commit dbdb837) on the 480 patients is run once more with another seed (46; the same
# data, recipe and start, configs/cpu_residual_mean_deep480_seed46.json); the two fine-tunes are averaged, that average
# is averaged half and half with the shipped mean, and the shipped residual network is trained +200 steps around it.
# Why: what two runs from one start share (the recipe's effect) survives their average, what each drew by its seed is
# halved (a "model soup", Wortsman et al. 2022).
# Usage: bash scripts/finetune_soup480.sh [WORK_DIR=runs]   (on a WORK_DIR that holds the forty-fifth step's mean,
# WORK_DIR/mean45, and data: about 13 min of training, 2 min of residual; on a fresh one run
# scripts/finetune_deep480.sh first). Then the card: scripts/build_candidate_card.py WORK_DIR/residual46
# WORK_DIR/mean46avg, and scripts/add_input_statistics.py with --data WORK_DIR/data_deep480 --split
# WORK_DIR/deep480/split.json.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
[ -f "$W/mean45/model.safetensors" ] || bash scripts/finetune_deep480.sh "$W"
MEAN_ONLY=1 SHIPPED=dbdb837 INIT=ship44 MEAN_RUN=mean46 RESIDUAL_RUN=residual46 DATA=data_deep480 SPLIT=deep480/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_deep480_seed46.json RESIDUAL_CONFIG=configs/cpu_residual_deep480.json \
  WORKERS=${WORKERS:-2} bash scripts/finetune_lesions.sh "$W"
mkdir -p "$W/soup46"
.venv/bin/python scripts/average_weights.py "$W/mean45/model.safetensors" "$W/mean46/model.safetensors" \
  "$W/soup46/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/ship44/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup46/model.safetensors" mean46avg residual46 configs/cpu_residual_deep480.json data_deep480 deep480/split.json
