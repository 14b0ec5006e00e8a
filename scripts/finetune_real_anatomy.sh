#!/usr/bin/env bash
# The twenty-ninth step (docs/model_quality.md, "Where the real-anatomy prostate r goes"): a diagnostic, not a
# candidate. The shipped mean (d60c75dd…, commit 647995c) fine-tuned with the fifth step's recipe on real-anatomy
# patients only — the 32 of scripts/finetune_physiology.sh (seed 2051) and 48 more (seed 2061, the ninth step's group
# P2) — to see whether the real-anatomy family's within-zone pattern is a matter of how much of it the network sees.
# Validation slices during training: the 12 validation patients of groups 4 (procedural A) and 5 (real anatomy).
# Usage: bash scripts/finetune_real_anatomy.sh [WORK_DIR=runs]   (about 60 min on a 2-core CPU in fp32)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
D=${D:-.venv/bin/dcediff}
PY=.venv/bin/python
SHIPPED=647995c
GENERATE_ONLY=1 bash scripts/finetune_physiology.sh "$W"   # data_physiology/ (groups 1–6)
mkdir -p "$W/data_real29" "$W/real29/init" "$W/mean29"
bash scripts/generate_phantom_groups.sh "$W" "$W/data_real29" 7 "P2 2061 48 prostatex A"
for d in "$W/data_physiology"/case_[245]*; do ln -sfn "$(realpath "$d")" "$W/data_real29/$(basename "$d")"; done
for ext in safetensors json; do
  f="$W/real29/init/dcediff_cpu_phantom_regression.$ext"
  [ -f "$f" ] || git show "$SHIPPED:Resources/Models/dcediff_cpu_phantom_regression.$ext" > "$f"
done
$PY - "$W" <<'EOF2'
import json, pathlib, sys
w = sys.argv[1]
names = sorted(p.name for p in pathlib.Path(f"{w}/data_real29").iterdir())
split = {"train": [n for n in names if n[5] in "27"], "validation": [n for n in names if n[5] in "45"], "test": []}
assert len(split["train"]) == 80 and len(split["validation"]) == 12, {k: len(v) for k, v in split.items()}
json.dump(split, open(f"{w}/mean29/split.json", "w"), indent=1)
c = json.load(open("configs/cpu_residual_mean_real_anatomy.json"))
c["init_weights"] = c["init_weights"].replace("runs/", f"{w}/", 1)
json.dump(c, open(f"{w}/mean29.json", "w"), indent=2)
EOF2
$D train --config "$W/mean29.json" --data "$W/data_real29" --out "$W/mean29" --cache "$W/cache" --quiet
