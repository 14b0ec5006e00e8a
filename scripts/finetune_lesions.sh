#!/usr/bin/env bash
# The fifth step of 2026-11-30 (docs/model_quality.md, "the lesions the mean does not draw"): the shipped model of the
# fourth step (7638fb0a…, regression 83d49c16…, commit b768596) fine-tuned on the same 96 generator-version-2 patients
# with a heavier lesion loss: mean +1500 steps (lesion weight +30, lesion slices 0.6 of a batch), residual +200 around
# the new mean. The data and the split are those of scripts/finetune_physiology.sh (generated here if absent).
# Usage: bash scripts/finetune_lesions.sh [WORK_DIR=runs]   (about 45 min on a 2-core CPU)
# Later steps run this recipe with other SHIPPED/INIT/runs/configs (scripts/finetune_lesions_longer.sh and others), and
# with other training data: DATA (a folder of WORK_DIR, default data_physiology) and SPLIT (its split.json, relative
# to WORK_DIR, default mean5/split.json; scripts/finetune_more_patients.sh). MEAN_ONLY=1 stops after the mean (for the
# steps that train their residual around an average of means: scripts/average_then_residual.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
D=${D:-.venv/bin/dcediff}
PY=.venv/bin/python
SHIPPED=${SHIPPED:-b768596}   # the commit that shipped the starting model (here 7638fb0a…)
INIT=${INIT:-lesions}          # $W/$INIT/init/: its files, as the configs' init_weights name them
MEAN_RUN=${MEAN_RUN:-mean6} RESIDUAL_RUN=${RESIDUAL_RUN:-residual6}
MEAN_CONFIG=${MEAN_CONFIG:-configs/cpu_residual_mean_lesions.json}
RESIDUAL_CONFIG=${RESIDUAL_CONFIG:-configs/cpu_residual_lesions.json}
DATA=${DATA:-data_physiology} SPLIT=${SPLIT:-mean5/split.json}
WORKERS=${WORKERS:-1}   # processes that preprocess (register and cache) the raw cases before training
GENERATE_ONLY=1 bash scripts/finetune_physiology.sh "$W"   # data_physiology/ and mean5/split.json
mkdir -p "$W/$INIT/init" "$W/$MEAN_RUN" "$W/$RESIDUAL_RUN"
bash scripts/fetch_shipped_init.sh "$W/$INIT/init" "$SHIPPED"
cp "$W/$SPLIT" "$W/$MEAN_RUN/split.json"
cp "$W/$SPLIT" "$W/$RESIDUAL_RUN/split.json"
for run in "$MEAN_RUN:$MEAN_CONFIG" "$RESIDUAL_RUN:$RESIDUAL_CONFIG"; do
  $PY - "$W" "${run%%:*}" "${run#*:}" <<'EOF2'
import json, sys
w, run, config = sys.argv[1:]
c = json.load(open(config))
c["init_weights"] = c["init_weights"].replace("runs/", f"{w}/", 1)
if "mean_model" in c:
    c["mean_model"] = c["mean_model"].replace("runs/", f"{w}/", 1)
json.dump(c, open(f"{w}/{run}.json", "w"), indent=2)
EOF2
done
$D train --config "$W/$MEAN_RUN.json" --data "$W/$DATA" --out "$W/$MEAN_RUN" --cache "$W/cache" --workers "$WORKERS" --quiet
[ "${MEAN_ONLY:-0}" = 1 ] && exit 0
$D train --config "$W/$RESIDUAL_RUN.json" --data "$W/$DATA" --out "$W/$RESIDUAL_RUN" --cache "$W/cache" --quiet
echo "Then ship as the fourth step was (scripts/finetune_physiology.sh's closing lines, with $MEAN_RUN/$RESIDUAL_RUN)."
