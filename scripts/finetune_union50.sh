#!/usr/bin/env bash
# The next CPU step after the forty-ninth (docs/model_quality.md, "A probe of that cure"): the forty-ninth step's two
# batch-16 fine-tunes of the shipped mean (seeds 49 and 50, configs/cpu_residual_mean_soup49.json, MINUTES each),
# trained on the 480 patients of scripts/finetune_deep480.sh together with the 174 new ones of
# scripts/finetune_soup49.sh (whose runs on the new patients alone pulled the mean towards them and cost the
# real-anatomy family; one such union run held it). Then the soup of the two, averaged half and half with the shipped
# mean, and the residual network +200 steps around it, as the forty-sixth to forty-ninth steps did.
# Usage: bash scripts/finetune_union50.sh [WORK_DIR=runs]   (on a WORK_DIR that holds the 480 patients, ship44/init and
# the forty-ninth step's patients (run scripts/finetune_soup49.sh first): about 2 × MINUTES (default 22) of training
# and 2 min more; leaves WORK_DIR/mean50avg and WORK_DIR/residual50)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
SHIPPED=${SHIPPED:-aa1f879}   # the commit that shipped 19baaa36… (regression 96817a12…)
MINUTES=${MINUTES:-22}
PY=.venv/bin/python
for needed in deep480/split.json soup49/split.json; do
  [ -f "$W/$needed" ] && continue
  echo "finetune_union50: $W/$needed missing; run scripts/finetune_soup49.sh $W first" >&2
  exit 2
done
bash scripts/fetch_shipped_init.sh "$W/ship48/init" "$SHIPPED"
mkdir -p "$W/data_union50" "$W/soup50"
for d in data_deep480 data_soup49; do
  for c in "$W/$d"/case_*; do ln -sfn "$(readlink -f "$c")" "$W/data_union50/$(basename "$c")"; done
done
# the union's split: every training patient of both sets; the in-run validation the new set's
[ -f "$W/union50_split.json" ] || $PY - "$W" <<'PY'
import json, sys
w = sys.argv[1]
known, new = (json.load(open(f"{w}/{name}/split.json")) for name in ("deep480", "soup49"))
split = {"train": known["train"] + new["train"], "validation": new["validation"], "test": []}
json.dump(split, open(f"{w}/union50_split.json", "w"), indent=1)
PY
for seed in 49 50; do
  bash scripts/train_seeded_mean.sh "$W" "union$seed" configs/cpu_residual_mean_soup49.json data_union50 \
    "$W/union50_split.json" "$seed" "$MINUTES"
done
$PY scripts/average_weights.py "$W/union49/model.safetensors" "$W/union50/model.safetensors" \
  "$W/soup50/model.safetensors" --alpha 0.5
exec bash scripts/average_then_residual.sh "$W" "$W/ship48/init/dcediff_cpu_phantom_regression.safetensors" \
  "$W/soup50/model.safetensors" mean50avg residual50 configs/cpu_residual_deep480.json data_deep480 deep480/split.json
