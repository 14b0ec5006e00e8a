#!/usr/bin/env bash
# A soup step's second half, here (docs/model_quality.md, forty-eighth step on): the fine-tunes brought back by the
# device tool (scripts/gpu_soup.sh; their parts and runs$STEP.tar.gz under DEVICE_FILES) joined, averaged with equal
# weights (the soup: a running average, the k-th run at α 1/k), the soup averaged half and half with the shipped mean
# they started from (commit SHIPPED), and the residual network +200 steps around it on the 480 patients of
# scripts/finetune_deep480.sh (RESIDUAL_CONFIG, DATA, SPLIT), as the forty-sixth step did.
# Usage: [STEP=55 RUN_SEEDS="55 56" SHIPPED=9f51a1e] bash scripts/finish_soup.sh [WORK_DIR=runs] DEVICE_FILES
#   (a rehearsal on tiny data: RESIDUAL_CONFIG, DATA and SPLIT pointed at it; Testing/test_gpu_scripts.py does so)
#   (about 3 min on a 2-core CPU; leaves WORK_DIR/mean${STEP}avg and WORK_DIR/residual$STEP)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs} FILES=${2:?DEVICE_FILES: the folder holding mean<seed>.model.part*.safetensors and runs<STEP>.tar.gz}
STEP=${STEP:-55} RUN_SEEDS=${RUN_SEEDS:-55 56}
# SHIPPED: the commit whose shipped files the candidate starts from (9f51a1e: 00136218…, regression 5c86e65f…, the
# fifty-fourth step's CPU union soup of four runs, with b581be8's card and expected-error map carried over; 3893a1f:
# 929d185b…, regression b8121477…, the fifty-third step's CPU union soup, with b581be8's card and expected-error map carried over; b581be8: 23d307ab…,
# regression 3a6b6a74…, the card's 1 residual step, which build_candidate_card.py carries over, and the
# expected-error map refitted on its output (trees and level factors), which the candidate card carries over;
# 0ee0743: the refitted trees with the older factors; 644efe5: the same weights and card with the older trees and
# factors; c90d100: the same weights, a 5-step card; b2987bb: a48f1f00…, regression 6e7066d4…; the fifty-first
# step's runs started from aa1f879: 19baaa36…, regression 96817a12…)
SHIPPED=${SHIPPED:-9f51a1e}
INIT_DIR=${INIT_DIR:-$W/init_$SHIPPED}
RESIDUAL_CONFIG=${RESIDUAL_CONFIG:-configs/cpu_residual_deep480.json} DATA=${DATA:-data_deep480}
SPLIT=${SPLIT:-deep480/split.json}
PY=.venv/bin/python
mkdir -p "$W/soup$STEP" "$W/gpu$STEP"
bash scripts/fetch_shipped_init.sh "$INIT_DIR" "$SHIPPED"
# the residual config's init_weights (runs/ship44/init/…, "runs/" read as WORK_DIR): dbdb837's residual, as the
# fifty-third and fifty-fourth steps fetched it; a work dir without it (a fresh checkout, runs4 now) failed after
# the soup
bash scripts/fetch_shipped_init.sh "$W/ship44/init" "${RESIDUAL_INIT_COMMIT:-dbdb837}"
tar -xzf "$FILES/runs$STEP.tar.gz" -C "$W/gpu$STEP"   # the runs' cards, logs and split
k=0
for seed in $RUN_SEEDS; do
  mkdir -p "$W/mean${seed}gpu"
  $PY scripts/split_safetensors.py join "$W/mean${seed}gpu/model.safetensors" "$FILES"/mean$seed.model.part*.safetensors
  cp "$W/gpu$STEP/mean$seed/model.json" "$W/mean${seed}gpu/model.json"   # its weights_sha256 checks the join on load
  k=$((k + 1))
  if [ "$k" -eq 1 ]; then
    cp "$W/mean${seed}gpu/model.safetensors" "$W/soup$STEP/model.safetensors"
    cp "$W/mean${seed}gpu/model.json" "$W/soup$STEP/model.json"
  else
    $PY scripts/average_weights.py "$W/soup$STEP/model.safetensors" "$W/mean${seed}gpu/model.safetensors" \
      "$W/soup$STEP/model.safetensors" --alpha "$($PY -c "print(1 / $k)")"
  fi
done
exec bash scripts/average_then_residual.sh "$W" "$INIT_DIR/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup$STEP/model.safetensors" "mean${STEP}avg" "residual$STEP" "$RESIDUAL_CONFIG" "$DATA" "$SPLIT"
