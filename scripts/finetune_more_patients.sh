#!/usr/bin/env bash
# The ninth step (docs/model_quality.md, "more lesion patients, not a heavier loss"): the shipped model (bda323aa…,
# regression d60c75dd…, commit 1be43c9) fine-tuned with the fifth step's recipe (lesion weight +30, lesion slices 0.6
# of a batch) on 2.5× the patients: the 96 training patients of scripts/finetune_physiology.sh plus 144 new ones of
# generator version 2 (64 procedural domain A, seed 2060; 48 real-anatomy, 2061; 32 procedural domain B, 2062).
# Validation stays the same 18 patients (seeds 2053–2055), so the result pairs with runs/val6.
# Mean +1500 steps, residual +200 around the new mean. Re-running resumes.
# Usage: bash scripts/finetune_more_patients.sh [WORK_DIR=runs]   (about 95 min on a 2-core CPU: generation
#   ~8, preprocessing the 258 cases ~35, mean ~45, residual ~8)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
D=${D:-.venv/bin/dcediff}
PY=.venv/bin/python
SHIPPED=1be43c9   # the commit that shipped the starting model (bda323aa…)
GENERATE_ONLY=1 bash scripts/finetune_physiology.sh "$W"   # data_physiology/ (groups 1–6) and mean5/split.json
mkdir -p "$W/more/init" "$W/data_more" "$W/mean10" "$W/residual10"
for f in dcediff_cpu_phantom dcediff_cpu_phantom_regression; do
  for ext in safetensors json; do
    [ -f "$W/more/init/$f.$ext" ] || git show "$SHIPPED:Resources/Models/$f.$ext" > "$W/more/init/$f.$ext"
  done
done
for d in "$W/data_physiology"/case_*; do ln -sfn "$(realpath "$d")" "$W/data_more/$(basename "$d")"; done
i=7   # groups 7–9 follow finetune_physiology.sh's 1–6 (case_<group><two digits>)
for spec in "A2 2060 64 procedural A" "P2 2061 48 prostatex A" "B2 2062 32 procedural B"; do
  set -- $spec
  [ -f "$W/physiology/$1/dataset.json" ] || \
    $D phantom --cases "$3" --seed "$2" --anatomy "$4" --domain "$5" --no-dce-series --out "$W/physiology/$1"
  for d in "$W/physiology/$1"/case_*; do n=$(basename "$d"); ln -sfn "$(realpath "$d")" "$W/data_more/case_$i${n#case_0}"; done
  i=$((i + 1))
done
$PY - "$W" <<'EOF2'
import json, pathlib, sys
w = sys.argv[1]
names = sorted(p.name for p in pathlib.Path(f"{w}/data_more").iterdir())
split = {"train": [n for n in names if n[5] in "123789"], "validation": [n for n in names if n[5] in "456"], "test": []}
assert len(split["train"]) == 240 and len(split["validation"]) == 18, {k: len(v) for k, v in split.items()}
for run, config in (("mean10", "configs/cpu_residual_mean_more_patients.json"),
                    ("residual10", "configs/cpu_residual_more_patients.json")):
    json.dump(split, open(f"{w}/{run}/split.json", "w"), indent=1)
    c = json.load(open(config))
    c["init_weights"] = c["init_weights"].replace("runs/", f"{w}/", 1)
    if "mean_model" in c:
        c["mean_model"] = c["mean_model"].replace("runs/", f"{w}/", 1)
    json.dump(c, open(f"{w}/{run}.json", "w"), indent=2)
EOF2
[ "${GENERATE_ONLY:-0}" = 1 ] && exit 0
$D train --config "$W/mean10.json" --data "$W/data_more" --out "$W/mean10" --cache "$W/cache" --quiet
$D train --config "$W/residual10.json" --data "$W/data_more" --out "$W/residual10" --cache "$W/cache" --quiet
echo "Then build the candidate cards as the fifth step did (runs/ship9.py) and evaluate on the 18 validation patients."
