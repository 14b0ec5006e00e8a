#!/usr/bin/env bash
# The fifty-fourth step (docs/model_quality.md): the fifty-third step's union soup again, from its own shipped mean
# (commit 3893a1f: 929d185b…, regression b8121477…), on the same 360 patients (scripts/finetune_union53.sh made and
# cached them: WORK_DIR/data_union53 and union53/split.json), with four shorter runs in place of two (seeds 61-64,
# MINUTES each, default 11): the fifty-third step's runs drew the lesions best near step 250 of 800, so shorter runs
# and more of them. The four are averaged with equal weights, that soup half and half with the shipped mean, and the
# residual network +200 steps around it, as in the fifty-third step.
# Usage: bash scripts/finetune_union54.sh [WORK_DIR=runs]   (4 × MINUTES of training, 2 min for the residual; leaves
#   WORK_DIR/mean54avg and WORK_DIR/residual54)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
MINUTES=${MINUTES:-11}
PY=.venv/bin/python
[ -f "$W/union53/split.json" ] || { echo "no $W/union53/split.json: run scripts/finetune_union53.sh first" >&2; exit 2; }
bash scripts/fetch_shipped_init.sh "$W/init_3893a1f" 3893a1f
bash scripts/fetch_shipped_init.sh "$W/ship44/init" dbdb837   # the residual config starts from this residual
sed 's#runs/init_b581be8/#runs/init_3893a1f/#' configs/cpu_residual_mean_union53.json > "$W/union54_config.json"
for seed in 61 62 63 64; do
  bash scripts/train_seeded_mean.sh "$W" "mean${seed}u" "$W/union54_config.json" data_union53 \
    "$W/union53/split.json" "$seed" "$MINUTES"
done
mkdir -p "$W/soup54"
$PY scripts/average_weights.py "$W/mean61u/model.safetensors" "$W/mean62u/model.safetensors" \
  "$W/soup54/pair_a.safetensors" --alpha 0.5
$PY scripts/average_weights.py "$W/mean63u/model.safetensors" "$W/mean64u/model.safetensors" \
  "$W/soup54/pair_b.safetensors" --alpha 0.5
$PY scripts/average_weights.py "$W/soup54/pair_a.safetensors" "$W/soup54/pair_b.safetensors" \
  "$W/soup54/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/init_3893a1f/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup54/model.safetensors" mean54avg residual54 configs/cpu_residual_deep480.json data_union53 union53/split.json
