#!/usr/bin/env bash
# The twenty-seventh step, second run (docs/model_quality.md, "a deeper mean network"): the deepened shipped mean
# (2 residual blocks per level, network_growth.py) trained with the fifth step's recipe on 240 patients instead of 96
# (the 96 of scripts/finetune_physiology.sh, the 72 of seeds 2060–2062 and the 72 generator-version-3 patients of
# runs/data_stack2), 4000 steps in bf16; validation on the same 18 patients as the first run; then the shipped
# residual network +200 steps around the new mean.
# Needs WORK_DIR/data_physiology, WORK_DIR/data_stack and WORK_DIR/data_stack2 (made by earlier steps).
# Usage: bash scripts/finetune_deeper240.sh [WORK_DIR=runs]   (about 70 min on a 2-core CPU with native bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
mkdir -p "$W/data_deep240" "$W/deep240"
for src in data_physiology data_stack data_stack2; do
  for d in "$W/$src"/case_*; do ln -sfn "$(realpath "$d")" "$W/data_deep240/$(basename "$d")"; done
done
.venv/bin/python - "$W" <<'EOF2'
import json, pathlib, sys
w = sys.argv[1]
base = json.load(open(f"{w}/mean5/split.json"))
names = sorted(p.name for p in pathlib.Path(f"{w}/data_deep240").iterdir())
extra = [n for n in names if n not in base["train"] and n not in base["validation"]]
split = {"train": base["train"] + extra, "validation": base["validation"], "test": []}
assert len(split["train"]) == 240 and len(split["validation"]) == 18, {k: len(v) for k, v in split.items()}
json.dump(split, open(f"{w}/deep240/split.json", "w"), indent=1)
EOF2
SHIPPED=647995c INIT=deeper240 MEAN_RUN=mean23 RESIDUAL_RUN=residual23 DATA=data_deep240 SPLIT=deep240/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_deeper240.json RESIDUAL_CONFIG=configs/cpu_residual_deeper240.json \
  exec bash scripts/finetune_lesions.sh "$W"
