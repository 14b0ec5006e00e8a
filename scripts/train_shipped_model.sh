#!/usr/bin/env bash
# Reproduces the shipped model (docs/model_quality.md) on a 2-core CPU in about 3 h; re-running resumes.
# Usage: scripts/train_shipped_model.sh [WORK_DIR]   (default: runs). Then scripts/evaluate_model_quality.sh.
#   1. 64 phantom patients of domain A (seed 2026), split by patient 52 / 6 / 6 (split.json of the mean run);
#   2. the mean: regression U-Net (cpu preset), enhancement parameterization, gland/lesion-weighted L1, 2400 steps
#      as configs/cpu_residual_mean.json had them first (lesion weight 3, no randomization), then resumed to 4400
#      with the config as it is now (lesion weight 8, intensity randomization) — the shipped mean was made so;
#   3. the residual diffusion network around that mean (configs/cpu_residual.json, 2500 steps);
#   4. fine-tuning (2026-11-30): 64 more patients (seed 2027, as case_1NN beside the first 64), split 116 / 12 (the
#      first run's validation + its unused test patients), the mean resumed to 8000 steps
#      (configs/cpu_residual_mean_finetune.json: lesion oversampling, coil field, PD dropout), then the residual
#      network resumed around it to 3700 steps (configs/cpu_residual_finetune.json);
#   5. sampling settings chosen on the 12 validation patients (scripts/tune_residual_sampling.py), written into the card;
#   6. real-anatomy patients (2026-11-30): 72 of the prostatex family (seed 2028, as case_2NN), 64 to training and 8 to
#      validation; the mean resumed to 10000 steps, the residual to 4400 (configs/cpu_residual_*mixed.json);
#   7. the out-of-distribution reference statistics of the training patients, written into both cards.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
D=.venv/bin/dcediff
PY=.venv/bin/python
mkdir -p "$W"
[ -f "$W/data_A/dataset.json" ] || $D phantom --cases 64 --domain A --seed 2026 --out "$W/data_A"
if [ ! -f "$W/mean/checkpoints/last.json" ]; then
  # the first 2400 steps: lesion weight 3, no intensity randomization
  $PY - "$W" <<'EOF'
import json, sys
c = json.load(open("configs/cpu_residual_mean.json"))
c.update(iterations=2400, augment={}, region_weights={"peripheral_zone": 1.0, "transition_zone": 1.0, "lesion": 3.0})
json.dump(c, open(sys.argv[1] + "/mean_first.json", "w"), indent=2)
EOF
  $D train --config "$W/mean_first.json" --data "$W/data_A" --out "$W/mean" --cache "$W/cache" --workers 2 --quiet
fi
$D train --config configs/cpu_residual_mean.json --data "$W/data_A" --out "$W/mean" --cache "$W/cache" --quiet
$PY - "$W" <<'EOF'
import json, sys
c = json.load(open("configs/cpu_residual.json"))
c["mean_model"] = sys.argv[1] + "/mean/model.safetensors"
json.dump(c, open(sys.argv[1] + "/residual.json", "w"), indent=2)
EOF
$D train --config "$W/residual.json" --data "$W/data_A" --out "$W/residual" --cache "$W/cache" --quiet
# --- fine-tuning on 116 patients
[ -f "$W/data_A2/dataset.json" ] || $D phantom --cases 64 --domain A --seed 2027 --out "$W/data_A2"
mkdir -p "$W/data_big"
for d in "$W"/data_A/case_*; do ln -sfn "$(realpath "$d")" "$W/data_big/$(basename "$d")"; done
for d in "$W"/data_A2/case_*; do n=$(basename "$d"); ln -sfn "$(realpath "$d")" "$W/data_big/case_1${n#case_0}"; done
for run in mean2 residual2; do
  src=${run%2}
  if [ ! -f "$W/$run/checkpoints/last.json" ]; then
    mkdir -p "$W/$run/checkpoints" && cp "$W/$src"/checkpoints/last.* "$W/$run/checkpoints/"
    $PY - "$W" "$run" <<'EOF'
import json, sys
w, run = sys.argv[1:3]
s = json.load(open(w + "/mean/split.json"))
json.dump({"train": sorted(s["train"] + [f"case_1{i:02d}" for i in range(64)]),
           "validation": sorted(s["validation"] + s["test"]), "test": [], "seed": s.get("seed", 0)},
          open(f"{w}/{run}/split.json", "w"), indent=1)
EOF
  fi
done
$D train --config configs/cpu_residual_mean_finetune.json --data "$W/data_big" --out "$W/mean2" --cache "$W/cache" --quiet
$PY - "$W" <<'EOF'
import json, sys
c = json.load(open("configs/cpu_residual_finetune.json"))
c["mean_model"] = sys.argv[1] + "/mean2/model.safetensors"
json.dump(c, open(sys.argv[1] + "/residual2.json", "w"), indent=2)
EOF
$D train --config "$W/residual2.json" --data "$W/data_big" --out "$W/residual2" --cache "$W/cache" --quiet
$PY scripts/tune_residual_sampling.py "$W/residual2/model" --data "$W/data_big" --split "$W/mean2/split.json" \
    --cache "$W/cache" --starts 0.5 --steps 5 --temperatures 1.0,0.5,0.25 --cases 12
# --- real-anatomy patients (the shipped model)
[ -f "$W/data_P/dataset.json" ] || $D phantom --cases 72 --domain A --seed 2028 --anatomy prostatex --out "$W/data_P"
mkdir -p "$W/data_big2"
for d in "$W"/data_big/case_*; do ln -sfn "$(realpath "$d")" "$W/data_big2/$(basename "$d")"; done
for d in "$W"/data_P/case_*; do n=$(basename "$d"); ln -sfn "$(realpath "$d")" "$W/data_big2/case_2${n#case_0}"; done
for run in mean3 residual3; do
  src=${run%3}2
  if [ ! -f "$W/$run/checkpoints/last.json" ]; then
    mkdir -p "$W/$run/checkpoints" && cp "$W/$src"/checkpoints/last.* "$W/$run/checkpoints/"
    $PY - "$W" "$run" <<'EOF'
import json, sys
w, run = sys.argv[1:3]
s = json.load(open(w + "/mean2/split.json"))
new = [f"case_2{i:02d}" for i in range(72)]
json.dump({"train": sorted(s["train"] + new[:64]), "validation": sorted(s["validation"] + new[64:]), "test": [],
           "seed": s.get("seed", 0)}, open(f"{w}/{run}/split.json", "w"), indent=1)
EOF
  fi
done
$D train --config configs/cpu_residual_mean_mixed.json --data "$W/data_big2" --out "$W/mean3" --cache "$W/cache" --quiet
$PY - "$W" <<'EOF'
import json, sys
c = json.load(open("configs/cpu_residual_mixed.json"))
c["mean_model"] = sys.argv[1] + "/mean3/model.safetensors"
json.dump(c, open(sys.argv[1] + "/residual3.json", "w"), indent=2)
EOF
$D train --config "$W/residual3.json" --data "$W/data_big2" --out "$W/residual3" --cache "$W/cache" --quiet
echo "Copy $W/residual3/model.* to Resources/Models/dcediff_cpu_phantom.* and $W/mean3/model.* to"
echo "Resources/Models/dcediff_cpu_phantom_regression.*, set the card's sampling (start 0.5, temperature 0.25), then:"
echo "  $PY scripts/add_input_statistics.py Resources/Models/dcediff_cpu_phantom --data $W/data_big2 --split $W/mean3/split.json --cache $W/cache"
