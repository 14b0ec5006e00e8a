#!/usr/bin/env bash
# The averaging steps' second half (docs/model_quality.md, forty-fourth step on): the element-wise average of two means
# (scripts/average_weights.py, α 0.5), then a residual network trained around that average (RESIDUAL_CONFIG with its
# mean_model pointed at the average and its "runs/" paths at WORK_DIR).
# Usage: bash scripts/average_then_residual.sh WORK_DIR MEAN_A MEAN_B AVERAGE_RUN RESIDUAL_RUN RESIDUAL_CONFIG DATA SPLIT
#   (MEAN_A/MEAN_B: model files; AVERAGE_RUN/RESIDUAL_RUN: run folders made in WORK_DIR; DATA: the data folder and
#   SPLIT its split.json, both relative to WORK_DIR; WORKERS processes preprocess uncached cases, default 2: on a
#   fresh checkout, 498 cases took 74 min in one process, 2026-12-04; PRECISION, when set, replaces the residual
#   config's mixed_precision, as in scripts/train_seeded_mean.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
W=$1 MEAN_A=$2 MEAN_B=$3 AVERAGE_RUN=$4 RESIDUAL_RUN=$5 RESIDUAL_CONFIG=$6 DATA=$7 SPLIT=$8
PY=.venv/bin/python
mkdir -p "$W/$AVERAGE_RUN" "$W/$RESIDUAL_RUN"
$PY scripts/average_weights.py "$MEAN_A" "$MEAN_B" "$W/$AVERAGE_RUN/model.safetensors" --alpha 0.5
$PY - "$W" "$AVERAGE_RUN" "$RESIDUAL_RUN" "$RESIDUAL_CONFIG" <<'EOF2'
import json, os, sys
w, average_run, residual_run, config = sys.argv[1:]
c = json.load(open(config))
c["mixed_precision"] = os.environ.get("PRECISION") or c.get("mixed_precision", "auto")
c["mean_model"] = f"{w}/{average_run}/model.safetensors"
c["init_weights"] = c["init_weights"].replace("runs/", f"{w}/", 1)
json.dump(c, open(f"{w}/{residual_run}.json", "w"), indent=2)
EOF2
cp "$W/$SPLIT" "$W/$RESIDUAL_RUN/split.json"
.venv/bin/dcediff train --config "$W/$RESIDUAL_RUN.json" --data "$W/$DATA" --out "$W/$RESIDUAL_RUN" \
  --cache "$W/cache" --workers "${WORKERS:-2}" --quiet
