#!/usr/bin/env bash
# The ninth step (docs/model_quality.md, "more lesion patients, not a heavier loss"): the shipped model (bda323aa…,
# regression d60c75dd…, commit 1be43c9) fine-tuned with the fifth step's recipe (scripts/finetune_lesions.sh: lesion
# weight +30, lesion slices 0.6 of a batch) on 2.5× the patients: the 96 training patients of
# scripts/finetune_physiology.sh plus 144 new ones of generator version 2 (64 procedural domain A, seed 2060; 48
# real-anatomy, 2061; 32 procedural domain B, 2062). Validation stays the same 18 patients (seeds 2053–2055), so the
# result pairs with runs/val6. Mean +1500 steps, residual +200 around the new mean. Re-running resumes.
# Usage: bash scripts/finetune_more_patients.sh [WORK_DIR=runs]   (about 95 min on a 2-core CPU: generation ~8,
#   preprocessing the 258 cases ~35, mean ~45, residual ~8)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
PY=.venv/bin/python
GENERATE_ONLY=1 bash scripts/finetune_physiology.sh "$W"   # data_physiology/ (groups 1–6) and mean5/split.json
mkdir -p "$W/data_more" "$W/more"
for d in "$W/data_physiology"/case_*; do ln -sfn "$(realpath "$d")" "$W/data_more/$(basename "$d")"; done
# groups 7–9 follow finetune_physiology.sh's 1–6
bash scripts/generate_phantom_groups.sh "$W" "$W/data_more" 7 "A2 2060 64 procedural A" "P2 2061 48 prostatex A" \
  "B2 2062 32 procedural B"
$PY - "$W" <<'EOF2'
import json, pathlib, sys
w = sys.argv[1]
names = sorted(p.name for p in pathlib.Path(f"{w}/data_more").iterdir())
split = {"train": [n for n in names if n[5] in "123789"], "validation": [n for n in names if n[5] in "456"], "test": []}
assert len(split["train"]) == 240 and len(split["validation"]) == 18, {k: len(v) for k, v in split.items()}
json.dump(split, open(f"{w}/more/split.json", "w"), indent=1)
EOF2
[ "${GENERATE_ONLY:-0}" = 1 ] && exit 0
SHIPPED=1be43c9 INIT=more MEAN_RUN=mean10 RESIDUAL_RUN=residual10 DATA=data_more SPLIT=more/split.json \
  MEAN_CONFIG=configs/cpu_residual_mean_more_patients.json RESIDUAL_CONFIG=configs/cpu_residual_more_patients.json \
  exec bash scripts/finetune_lesions.sh "$W"
