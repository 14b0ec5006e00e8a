#!/usr/bin/env bash
# The forty-seventh step (docs/model_quality.md): the forty-sixth step's recipe on more patients. 120 version-4 phantom
# patients no network has seen (seeds 2090 procedural A 40, 2091 real anatomy 40, 2092 procedural B 40; cases
# case_84xx–case_86xx) join the 480 of scripts/finetune_deep480.sh (600 in all, the same 18 validation patients); the
# shipped mean (8b19f24d…, commit SHIPPED) is trained 2000 steps on them twice, with seeds 47 and 48
# (configs/cpu_residual_mean_deep600_seed47.json / _seed48.json), the two runs are averaged (a soup), that average is
# averaged half and half with the shipped mean, and the shipped residual network is trained +200 steps around it
# (configs/cpu_residual_deep600.json).
# Usage: bash scripts/finetune_soup600.sh [WORK_DIR=runs]   (on a WORK_DIR that holds the 480 patients: about 8 min
# of generation and preprocessing and 27 min of training; on a fresh one run scripts/finetune_deep480.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
SHIPPED=${SHIPPED:-9d5f882}   # the commit that shipped 8b19f24d…
[ -f "$W/deep480/split.json" ] || bash scripts/finetune_deep480.sh "$W"
bash scripts/extend_patient_set.sh "$W" "$W/data_deep480" "$W/deep480/split.json" deep600 600 18 84 \
  "m5A 2090 40 procedural A" "m5P 2091 40 prostatex A" "m5B 2092 40 procedural B"
for seed in 47 48; do
  MEAN_ONLY=1 SHIPPED=$SHIPPED INIT=ship46 MEAN_RUN=mean$seed RESIDUAL_RUN=residual47 DATA=data_deep600 \
    SPLIT=deep600/split.json MEAN_CONFIG=configs/cpu_residual_mean_deep600_seed$seed.json \
    RESIDUAL_CONFIG=configs/cpu_residual_deep600.json WORKERS=${WORKERS:-2} bash scripts/finetune_lesions.sh "$W"
done
mkdir -p "$W/soup47"
.venv/bin/python scripts/average_weights.py "$W/mean47/model.safetensors" "$W/mean48/model.safetensors" \
  "$W/soup47/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/ship46/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup47/model.safetensors" mean47avg residual47 configs/cpu_residual_deep600.json data_deep600 deep600/split.json
