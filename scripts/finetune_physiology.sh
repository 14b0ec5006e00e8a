#!/usr/bin/env bash
# Stage 9 of the shipped model (docs/model_quality.md, "Generator version 2"): fine-tunes the stage-7 model (3d58c39d…)
# on phantom patients of generator version 2, whose gland enhances as real exams do (gland Ktrans 0.7× of version 1;
# docs/phantom.md). Self-contained: both networks start from the stage-7 model files, taken from git.
# Usage: scripts/finetune_physiology.sh [WORK_DIR]   (default: runs; re-running resumes)
#   96 training patients: 32 procedural domain A (seed 2050), 32 real-anatomy (2051), 32 procedural domain B (2052);
#   18 validation patients: 6 each (seeds 2053 A, 2054 real-anatomy, 2055 B); no test patients (generated fresh).
#   The mean network +1500 steps (configs/cpu_residual_mean_physiology.json), the residual +400 around it
#   (configs/cpu_residual_physiology.json). About 75 min on a 2-core CPU (generation ~25, training ~45).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
D=${D:-.venv/bin/dcediff}
PY=.venv/bin/python
STAGE7=ae6b568   # the commit that shipped the stage-7 model (3d58c39d…)
mkdir -p "$W/physiology/init" "$W/data_physiology" "$W/mean5" "$W/residual5"
for f in dcediff_cpu_phantom dcediff_cpu_phantom_regression; do
  for ext in safetensors json; do
    [ -f "$W/physiology/init/$f.$ext" ] || git show "$STAGE7:Resources/Models/$f.$ext" > "$W/physiology/init/$f.$ext"
  done
done
bash scripts/generate_phantom_groups.sh "$W" "$W/data_physiology" 1 "A 2050 32 procedural A" "P 2051 32 prostatex A" \
  "B 2052 32 procedural B" "vA 2053 6 procedural A" "vP 2054 6 prostatex A" "vB 2055 6 procedural B"
$PY - "$W" <<'EOF2'
import json, pathlib, sys
w = sys.argv[1]
names = sorted(p.name for p in pathlib.Path(f"{w}/data_physiology").iterdir())
split = {"train": [n for n in names if n[5] in "123"], "validation": [n for n in names if n[5] in "456"], "test": []}
for run, config in (("mean5", "configs/cpu_residual_mean_physiology.json"), ("residual5", "configs/cpu_residual_physiology.json")):
    json.dump(split, open(f"{w}/{run}/split.json", "w"), indent=1)
    c = json.load(open(config))
    c["init_weights"] = c["init_weights"].replace("runs/", f"{w}/", 1)
    if "mean_model" in c:
        c["mean_model"] = f"{w}/mean5/model.safetensors"
    json.dump(c, open(f"{w}/{run}.json", "w"), indent=2)
EOF2
[ "${GENERATE_ONLY:-0}" = 1 ] && exit 0
$D train --config "$W/mean5.json" --data "$W/data_physiology" --out "$W/mean5" --cache "$W/cache" --quiet
$D train --config "$W/residual5.json" --data "$W/data_physiology" --out "$W/residual5" --cache "$W/cache" --quiet
# The residual card keeps the stage-7 card's sampling settings (start 0.5, temperature 0.25): `dcediff train` carries
# them over from init_weights since 2026-11-30 (this run was made before that, and they were set by hand).
echo "Then ship as stage 7 was (docs/model_quality.md): copy $W/residual5/model.* and $W/mean5/model.* to"
echo "Resources/Models/dcediff_cpu_phantom{,_regression}.* (the residual card already has its sampling settings), then"
echo "  $PY scripts/add_input_statistics.py Resources/Models/dcediff_cpu_phantom --data $W/data_physiology --split $W/mean5/split.json --cache $W/cache"
echo "  (the same for dcediff_cpu_phantom_regression) and the expected-error model on 6 validation patients:"
echo "  $PY scripts/fit_error_model.py Resources/Models/dcediff_cpu_phantom --data $W/data_physiology --split SPLIT --cache $W/cache"
echo "  with SPLIT a copy of $W/mean5/split.json whose validation list is case_400, 401, 500, 501, 600, 601"
