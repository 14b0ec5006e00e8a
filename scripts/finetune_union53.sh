#!/usr/bin/env bash
# The fifty-third step (docs/model_quality.md): the fiftieth step's union soup, started from the shipped mean of
# commit b581be8 (23d307ab…, regression 3a6b6a74…; configs/cpu_residual_mean_union53.json names its folder). Two
# batch-16 fine-tunes (seeds 53 and 54, configs/cpu_residual_mean_union53.json, MINUTES each) on 360 version-4
# patients: 240 no network has seen (seeds 2150-2155, 40 each: procedural A, real anatomy, procedural B, two groups of
# each) together with 120 the mean was trained on (seeds 2080-2082 of scripts/finetune_deep480.sh), so that it does
# not drift towards a small new set (the forty-ninth step's loss, the fiftieth step's cure); the last case of each
# group validates the runs. Then the soup of the two, averaged half and half with the shipped mean, and the residual
# network +200 steps around it (from the forty-fourth step's shipped residual, as in every soup step) on the same
# patients.
# Usage: bash scripts/finetune_union53.sh [WORK_DIR=runs]   (about 30 min of generation and caching on a 2-core CPU,
#   2 × MINUTES (default 22) of training, 2 min for the residual; leaves WORK_DIR/mean53avg and WORK_DIR/residual53)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
MINUTES=${MINUTES:-22}
PY=.venv/bin/python
bash scripts/fetch_shipped_init.sh "$W/init_b581be8" b581be8
bash scripts/fetch_shipped_init.sh "$W/ship44/init" dbdb837   # the residual config starts from this residual
[ -f "$W/union53/split.json" ] || OMP_NUM_THREADS=1 $PY scripts/generate_cached_groups.py "$W" "$W/data_union53" \
  "$W/cache" "$W/union53/split.json" 60 \
  "m4A 2080 40 procedural A" "m4P 2081 40 prostatex A" "m4B 2082 40 procedural B" \
  "u53a0 2150 40 procedural A" "u53a1 2151 40 procedural A" "u53p0 2152 40 prostatex A" \
  "u53p1 2153 40 prostatex A" "u53b0 2154 40 procedural B" "u53b1 2155 40 procedural B"
for seed in 53 54; do
  bash scripts/train_seeded_mean.sh "$W" "mean${seed}u" configs/cpu_residual_mean_union53.json data_union53 \
    "$W/union53/split.json" "$seed" "$MINUTES"
done
mkdir -p "$W/soup53"
$PY scripts/average_weights.py "$W/mean53u/model.safetensors" "$W/mean54u/model.safetensors" \
  "$W/soup53/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/init_b581be8/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup53/model.safetensors" mean53avg residual53 configs/cpu_residual_deep480.json data_union53 union53/split.json
