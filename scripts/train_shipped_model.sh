#!/usr/bin/env bash
# Reproduces the shipped model's base, 3d58c39d… (the widened fine-tune of 2026-11-30), on a 2-core CPU in about 3 h;
# re-running resumes. The shipped card came from it through the fine-tunes scripts/finetune_*.sh, in the order
# docs/model_quality.md records them (the last: scripts/finetune_union54.sh).
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
#   7. widened fine-tune (2026-11-30): 128 new patients incl. domain B and 48 more real-anatomy ones, both networks
#      starting from the stage-6 model files (init_weights), mean +1500, residual +400 steps;
#   8. the out-of-distribution reference statistics of the widened step's training patients, written into both cards.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs}
D=${D:-.venv/bin/dcediff}
PY=.venv/bin/python
# The residual network's config for stage STAGE: CONFIG with the stage's mean network filled in.
write_residual_config() {
  $PY - "$W" "$1" "$2" <<'EOF'
import json, sys
w, config, stage = sys.argv[1:4]
c = json.load(open(config))
c["mean_model"] = f"{w}/mean{stage}/model.safetensors"
json.dump(c, open(f"{w}/residual{stage}.json", "w"), indent=2)
EOF
}

# One resumption stage (STAGE 2, 3, ...): NEW_DATA's cases join PREV_DATA's in DATA as case_<PREFIX>NN; the first
# N_TRAIN of them go to training, the rest and the previous split's test cases to validation; the mean and the
# residual networks resume from stage PREV's checkpoints with the stage's configs.
resume_stage() {
  local stage=$1 prev=$2 prev_data=$3 new_data=$4 data=$5 prefix=$6 n_train=$7 mean_config=$8 residual_config=$9
  mkdir -p "$W/$data"
  for d in "$W/$prev_data"/case_*; do ln -sfn "$(realpath "$d")" "$W/$data/$(basename "$d")"; done
  for d in "$W/$new_data"/case_*; do n=$(basename "$d"); ln -sfn "$(realpath "$d")" "$W/$data/case_$prefix${n#case_0}"; done
  for net in mean residual; do
    if [ ! -f "$W/$net$stage/checkpoints/last.json" ]; then
      mkdir -p "$W/$net$stage/checkpoints" && cp "$W/$net$prev"/checkpoints/last.* "$W/$net$stage/checkpoints/"
      $PY - "$W/mean$prev/split.json" "$W/$new_data" "$prefix" "$n_train" "$W/$net$stage/split.json" <<'EOF'
import json, pathlib, sys
previous, new_data, prefix, n_train, out = sys.argv[1:6]
s = json.load(open(previous))
new = sorted(f"case_{prefix}{p.name[len('case_0'):]}" for p in pathlib.Path(new_data).glob("case_*") if p.is_dir())
n = int(n_train)
json.dump({"train": sorted(s["train"] + new[:n]), "validation": sorted(s["validation"] + s["test"] + new[n:]),
           "test": [], "seed": s.get("seed", 0)}, open(out, "w"), indent=1)
EOF
    fi
  done
  $D train --config "$mean_config" --data "$W/$data" --out "$W/mean$stage" --cache "$W/cache" --quiet --change-recipe
  write_residual_config "$residual_config" "$stage"
  $D train --config "$W/residual$stage.json" --data "$W/$data" --out "$W/residual$stage" --cache "$W/cache" \
    --quiet --change-recipe
}

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
# the mean run's second stage: the lesion weight and the augmentation change (a curriculum, on purpose)
$D train --config configs/cpu_residual_mean.json --data "$W/data_A" --out "$W/mean" --cache "$W/cache" --quiet \
  --change-recipe
write_residual_config configs/cpu_residual.json ""
$D train --config "$W/residual.json" --data "$W/data_A" --out "$W/residual" --cache "$W/cache" --quiet
# --- fine-tuning on 116 patients
[ -f "$W/data_A2/dataset.json" ] || $D phantom --cases 64 --domain A --seed 2027 --out "$W/data_A2"
resume_stage 2 "" data_A data_A2 data_big 1 64 configs/cpu_residual_mean_finetune.json configs/cpu_residual_finetune.json
$PY scripts/tune_residual_sampling.py "$W/residual2/model" --data "$W/data_big" --split "$W/mean2/split.json" \
    --cache "$W/cache" --starts 0.5 --steps 5 --temperatures 1.0,0.5,0.25 --cases 12
# --- real-anatomy patients (the shipped model)
[ -f "$W/data_P/dataset.json" ] || $D phantom --cases 72 --domain A --seed 2028 --anatomy prostatex --out "$W/data_P"
resume_stage 3 2 data_big data_P data_big2 2 64 configs/cpu_residual_mean_mixed.json configs/cpu_residual_mixed.json
# --- widened fine-tune (2026-11-30, third step): domain B and more real anatomy; both networks start from the stage-3
# model files (init_weights: this step was run on a machine without the earlier checkpoints), 128 new training and
# 18 new validation patients in their own folder (case_1NN A seed 2040, 2NN real-anatomy 2041, 3NN B 2042;
# validation 4NN A 2043, 5NN real-anatomy 2044, 6NN B 2045)
mkdir -p "$W/ft" "$W/data_wide" "$W/mean4" "$W/residual4"
i=1
for spec in "A 2040 40 procedural A" "P 2041 48 prostatex A" "B 2042 40 procedural B" "vA 2043 6 procedural A" \
            "vP 2044 6 prostatex A" "vB 2045 6 procedural B"; do
  set -- $spec
  [ -f "$W/ft/$1/dataset.json" ] || $D phantom --cases "$3" --seed "$2" --anatomy "$4" --domain "$5" --out "$W/ft/$1"
  for d in "$W/ft/$1"/case_*; do n=$(basename "$d"); ln -sfn "$(realpath "$d")" "$W/data_wide/case_$i${n#case_0}"; done
  i=$((i + 1))
done
$PY - "$W" <<'EOF2'
import json, pathlib, sys
w = sys.argv[1]
names = sorted(p.name for p in pathlib.Path(f"{w}/data_wide").iterdir())
split = {"train": [n for n in names if n[5] in "123"], "validation": [n for n in names if n[5] in "456"], "test": []}
for run, config, init in (("mean4", "configs/cpu_residual_mean_widened.json", f"{w}/mean3/model.safetensors"),
                          ("residual4", "configs/cpu_residual_widened.json", f"{w}/residual3/model.safetensors")):
    json.dump(split, open(f"{w}/{run}/split.json", "w"), indent=1)
    c = json.load(open(config))
    c["init_weights"] = init
    if run == "residual4":
        c["mean_model"] = f"{w}/mean4/model.safetensors"
    json.dump(c, open(f"{w}/{run}.json", "w"), indent=2)
EOF2
$D train --config "$W/mean4.json" --data "$W/data_wide" --out "$W/mean4" --cache "$W/cache" --quiet
$D train --config "$W/residual4.json" --data "$W/data_wide" --out "$W/residual4" --cache "$W/cache" --quiet
echo "Copy $W/residual4/model.* to Resources/Models/dcediff_cpu_phantom.* and $W/mean4/model.* to"
echo "Resources/Models/dcediff_cpu_phantom_regression.*, set the card's sampling (start 0.5, temperature 0.25), then:"
echo "  $PY scripts/add_input_statistics.py Resources/Models/dcediff_cpu_phantom --data $W/data_wide --split $W/mean4/split.json --cache $W/cache"
echo "  (and the same for Resources/Models/dcediff_cpu_phantom_regression)"
