#!/usr/bin/env bash
# Reproduces the shipped model (docs/model_quality.md) on a 2-core CPU in about 1 h 45 min; re-running resumes.
# Usage: scripts/train_shipped_model.sh [WORK_DIR]   (default: runs). Then scripts/evaluate_model_quality.sh.
#   1. 64 phantom patients of domain A (seed 2026), split by patient 52 / 6 / 6 (split.json of the mean run);
#   2. the mean: regression U-Net (cpu preset), enhancement parameterization, gland/lesion-weighted L1, 2400 steps
#      as configs/cpu_residual_mean.json had them first (lesion weight 3, no randomization), then resumed to 4400
#      with the config as it is now (lesion weight 8, intensity randomization) — the shipped mean was made so;
#   3. the residual diffusion network around that mean (configs/cpu_residual.json, 2500 steps);
#   4. sampling settings chosen on the validation patients (scripts/tune_residual_sampling.py), written into the card;
#   5. the out-of-distribution reference statistics of the training patients, written into both cards.
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
$PY scripts/tune_residual_sampling.py "$W/residual/best" --data "$W/data_A" --split "$W/mean/split.json" \
    --cache "$W/cache" --starts 0.5,0.8 --steps 5 --temperatures 1.0,0.5,0.25 --cases 6
echo "Copy $W/residual/best.* to Resources/Models/dcediff_cpu_phantom.* and $W/mean/model.* to"
echo "Resources/Models/dcediff_cpu_phantom_regression.*, set the card's sampling from the table above, then:"
echo "  $PY scripts/add_input_statistics.py Resources/Models/dcediff_cpu_phantom --data $W/data_A --split $W/mean/split.json --cache $W/cache"
