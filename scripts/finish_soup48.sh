#!/usr/bin/env bash
# The forty-eighth step's second half, here (docs/model_quality.md): the two GPU fine-tunes brought back by the device
# tool (scripts/gpu_soup48.sh; their parts under DEVICE_FILES) joined, averaged (the soup), the soup averaged half and
# half with the shipped mean, and the shipped residual network +200 steps around it on the 480 patients, as the
# forty-sixth step did (scripts/finetune_soup480.sh, whose data and init this reuses).
# Usage: bash scripts/finish_soup48.sh [WORK_DIR=runs] DEVICE_FILES   (about 3 min on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs} FILES=${2:?DEVICE_FILES: the folder holding mean48.model.part*.safetensors and those of mean49}
PY=.venv/bin/python
SHIPPED=${SHIPPED:-9d5f882}   # the commit that shipped the starting card (8b19f24d…, regression 904312bc…)
mkdir -p "$W/ship46/init" "$W/mean48gpu" "$W/mean49gpu" "$W/soup48"
for f in dcediff_cpu_phantom dcediff_cpu_phantom_regression; do
  for ext in safetensors json; do
    [ -f "$W/ship46/init/$f.$ext" ] || git show "$SHIPPED:Resources/Models/$f.$ext" > "$W/ship46/init/$f.$ext"
  done
done
T=dcediff_cpu_phantom.error_trees.safetensors
[ -f "$W/ship46/init/$T" ] || git show "$SHIPPED:Resources/Models/$T" > "$W/ship46/init/$T"
mkdir -p "$W/gpu48" && tar -xzf "$FILES/runs48.tar.gz" -C "$W/gpu48"   # the runs' cards, logs and split
for seed in 48 49; do
  $PY scripts/split_safetensors.py join "$W/mean${seed}gpu/model.safetensors" "$FILES"/mean$seed.model.part*.safetensors
  cp "$W/gpu48/mean$seed/model.json" "$W/mean${seed}gpu/model.json"   # its weights_sha256 checks the join on load
done
$PY scripts/average_weights.py "$W/mean48gpu/model.safetensors" "$W/mean49gpu/model.safetensors" \
  "$W/soup48/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/ship46/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup48/model.safetensors" mean48avg residual48 configs/cpu_residual_deep480.json data_deep480 deep480/split.json
