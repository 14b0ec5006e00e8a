#!/usr/bin/env bash
# The forty-ninth step (docs/model_quality.md): the forty-eighth step's GPU recipe at the scale of this 2-core CPU.
# 180 version-4 phantom patients no network has seen (seeds 2120-2121 procedural A, 2122-2123 real anatomy,
# 2124-2125 procedural B, 30 each; cases case_91xx-case_96xx; the last of each group validates) are generated and
# cached; the shipped mean (19baaa36…'s, commit SHIPPED) is trained at batch 16 on them twice, seeds 49 and 50
# (configs/cpu_residual_mean_soup49.json), each run stopped by time (MINUTES); the two are averaged (a soup), the soup
# averaged half and half with the shipped mean, and the residual network trained +200 steps around it on the 480
# patients of scripts/finetune_deep480.sh, as the forty-sixth and forty-eighth steps did.
# Usage: bash scripts/finetune_soup49.sh [WORK_DIR=runs]   (on a WORK_DIR that holds the 480 patients and ship44/init:
# about 10 min of generation and 2 × MINUTES (default 22) of training, 2 min for the residual)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
SHIPPED=${SHIPPED:-aa1f879}   # the commit that shipped 19baaa36… (regression 96817a12…)
MINUTES=${MINUTES:-22}
PY=.venv/bin/python
[ -f "$W/deep480/split.json" ] || bash scripts/finetune_deep480.sh "$W"
mkdir -p "$W/soup49"
bash scripts/fetch_shipped_init.sh "$W/ship48/init" "$SHIPPED"
[ -f "$W/soup49/split.json" ] || OMP_NUM_THREADS=1 $PY scripts/generate_cached_groups.py "$W" "$W/data_soup49" \
  "$W/cache" "$W/soup49/split.json" 91 \
  "s49a0 2120 30 procedural A" "s49a1 2121 30 procedural A" "s49p0 2122 30 prostatex A" \
  "s49p1 2123 30 prostatex A" "s49b0 2124 30 procedural B" "s49b1 2125 30 procedural B"
for seed in 49 50; do
  bash scripts/train_seeded_mean.sh "$W" "mean${seed}cpu" configs/cpu_residual_mean_soup49.json data_soup49 \
    "$W/soup49/split.json" "$seed" "$MINUTES"
done
$PY scripts/average_weights.py "$W/mean49cpu/model.safetensors" "$W/mean50cpu/model.safetensors" \
  "$W/soup49/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/ship48/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup49/model.safetensors" mean49avg residual49 configs/cpu_residual_deep480.json data_deep480 deep480/split.json
