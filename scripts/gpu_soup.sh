#!/usr/bin/env bash
# A soup step's GPU half (docs/model_quality.md, forty-eighth step on; docs/training.md, "On the GPU machine"): on the
# machine the `device` tool lends for about 15 minutes, in one call,
#   1. SimpleITK from the carried wheel (.whl/), the shipped mean network from the carried half-precision copy
#      (.gpu/init/, brought back to float32: the tracked tree plus SimpleITK leave no room for the float32 original);
#   2. new training patients in groups of CASES (GROUPS_A procedural A, GROUPS_P real anatomy A, GROUPS_B procedural B,
#      seeds FIRST_SEED onwards in that order), generated and preprocessed by one process per group
#      (scripts/generate_cached_groups.py); the last of each group validates;
#   3. one fine-tune of the shipped mean per seed of RUN_SEEDS, side by side on the one GPU (CONFIG, with
#      LOADER_WORKERS processes building each run's crops), each stopped by time (`dcediff train --max-minutes`) so
#      that the whole call ends inside BUDGET seconds; a second call while the machine is warm resumes them;
#   4. each run's EMA model split into parts under the 16 MiB a returned file may have (scripts/split_safetensors.py),
#      with the runs' cards, logs and summaries, into $OUT (runs$STEP.tar.gz); also every PROGRESS_SECONDS during
#      training, from the run's best.* until its model.* exists, so that a call killed at its time limit still brings
#      back each run's last validated weights (the driver.log line "packaged ... from best.*" says which).
# Before: bash scripts/prepare_gpu_carry.sh here. Usage there: [STEP=55 RUN_SEEDS="55 56" …] bash
# scripts/gpu_soup.sh [BUDGET=540]. A rehearsal here on the CPU with tiny numbers: CASES=2 GROUPS_USED=2 DEVICE=cpu
# OUT=/tmp/out bash scripts/gpu_soup.sh 150. Then, here: bash scripts/finish_soup.sh.
# The defaults are the next GPU step's plan (55; the fifty-second to fifty-fourth steps were CPU ones, the fifty-third
# and fifty-fourth trained on seeds 2150-2155): the recipe of the forty-eighth and fifty-first steps (both shipped) on new seeds
# 2160–2175, 4 crop-building workers a run, at most 2000 steps a run.
# STEP=48 RUN_SEEDS="48 49" FIRST_SEED=2100 LOADER_WORKERS=0 is what the forty-eighth step ran (scripts/gpu_soup48.sh);
# STEP=51 RUN_SEEDS="51 52" FIRST_SEED=2130 ITERATIONS=2000 with BUDGET 585 the fifty-first (one call of 565 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-540}
T0=$(date +%s)
OUT=${OUT:?OUT: the folder whose files come back}
STEP=${STEP:-55} RUN_SEEDS=${RUN_SEEDS:-55 56} FIRST_SEED=${FIRST_SEED:-2160}
GROUPS_A=${GROUPS_A:-6} GROUPS_P=${GROUPS_P:-5} GROUPS_B=${GROUPS_B:-5} CASES=${CASES:-18}
LOADER_WORKERS=${LOADER_WORKERS:-4} CONFIG=${CONFIG:-configs/gpu_residual_mean_soup48.json}
W=${W:-/tmp/w$STEP} DEVICE=${DEVICE:-cuda} PY=${PY:-python3} PROGRESS_SECONDS=${PROGRESS_SECONDS:-60}
SITE=${SITE:-/tmp/site}  # where the carried SimpleITK wheel is installed (a rehearsal here: a folder of its own)
# ITERATIONS: a cap on each run's steps (the config's 200000 leaves the time limit to stop it); the schedule is constant
# after the warm-up, so the cap changes nothing but where a run ends
ITERATIONS=${ITERATIONS:-2000}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
exec > >(tee "$OUT/driver.log") 2>&1
if [ -d .whl ] && ! $PY -c "import SimpleITK" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH=$SITE:$PWD
else
  export PYTHONPATH=$PWD
fi
mkdir -p "$W/init"
$PY - "$W/init" <<'EOF'
import json, sys
from pathlib import Path
import torch
from safetensors import safe_open
from safetensors.torch import save_file
out = Path(sys.argv[1])
name = "dcediff_cpu_phantom_regression"
with safe_open(f".gpu/init/{name}.fp16.safetensors", framework="pt") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k).to(torch.float32) for k in f.keys()}
save_file(tensors, str(out / f"{name}.safetensors"), metadata=meta)
from DCEDiffLib.diffusion.model_files import sha256_of
card = json.load(open(f".gpu/init/{name}.json"))
card["weights_sha256"] = sha256_of(out / f"{name}.safetensors")  # the half-precision-rounded weights: a new file
json.dump(card, open(out / f"{name}.json", "w"), indent=2)
print(f"init: {len(tensors)} tensors back to float32; torch {torch.__version__}, cuda {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
EOF
SPECS=() seed=$FIRST_SEED
for family in "a procedural A $GROUPS_A" "p prostatex A $GROUPS_P" "b procedural B $GROUPS_B"; do
  set -- $family
  for ((i = 0; i < $4; i++)); do SPECS+=("s$STEP$1$i $seed $CASES $2 $3"); seed=$((seed + 1)); done
done
# the rehearsal: the first group of each family, as far as GROUPS_USED goes
if [ -n "${GROUPS_USED:-}" ] && [ "$GROUPS_USED" -lt "${#SPECS[@]}" ]; then
  SPECS=("${SPECS[0]}" "${SPECS[$GROUPS_A]}" "${SPECS[$((GROUPS_A + GROUPS_P))]}")
  SPECS=("${SPECS[@]:0:$GROUPS_USED}")
fi
$PY scripts/generate_cached_groups.py "$W" "$W/data" "$W/cache" "$W/split.json" 10 "${SPECS[@]}"
echo "data ready after $(( $(date +%s) - T0 )) s"
LEFT=$(( BUDGET - ($(date +%s) - T0) - 50 ))  # 50 s: loading the cases, the last validation, export and split
[ "$LEFT" -gt 30 ] || { echo "only $LEFT s left for training: stopping"; exit 3; }
MINUTES=$($PY -c "print(round($LEFT / 60, 2))")
echo "training for $MINUTES min per run"
PIDS=()
for seed in $RUN_SEEDS; do
  mkdir -p "$W/mean$seed"
  cp "$W/split.json" "$W/mean$seed/split.json"
  $PY - "$W" "$seed" "$CONFIG" "$LOADER_WORKERS" "$ITERATIONS" <<'EOF'
import json, sys
w, seed, config, workers, iterations = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
c = json.load(open(config))
c["init_weights"] = f"{w}/init/dcediff_cpu_phantom_regression.safetensors"
c["seed"] = seed
if workers:
    c["loader_workers"] = workers
if iterations:
    c["iterations"] = int(iterations)
json.dump(c, open(f"{w}/mean{seed}.json", "w"), indent=2)
EOF
  $PY -m DCEDiffLib.cli train --config "$W/mean$seed.json" --data "$W/data" --out "$W/mean$seed" --cache "$W/cache" \
    --device "$DEVICE" --max-minutes "$MINUTES" --quiet > "$W/train$seed.log" 2>&1 &
  PIDS+=($!)
done
# package: each run's model.* (else its best.*, the last validated weights of a run still going) into $OUT, staged in
# $W/pack and moved, so that a call killed mid-write leaves the previous complete files (the card's hash checks a join)
package() {
  local seed from kept=(split.json)
  rm -rf "$W/pack" && mkdir -p "$W/pack" && cp "$W/split.json" "$W/pack/"
  for seed in $RUN_SEEDS; do
    from=model
    [ -f "$W/mean$seed/model.safetensors" ] || from=best
    [ -f "$W/mean$seed/$from.safetensors" ] || { echo "run $seed has no model yet"; continue; }
    mkdir -p "$W/pack/mean$seed"
    # card and weights copied together and checked against each other: a new best.* written between the two copies
    # would pair one validation's card with another's weights (finish_soup's hash check would refuse them)
    # (copied again, up to 3 times, until they match: best.* is rewritten at a validation, seconds apart at most)
    local try=0
    until cp "$W/mean$seed/$from.json" "$W/pack/mean$seed/model.json" \
        && cp "$W/mean$seed/$from.safetensors" "$W/pack/weights.safetensors" \
        && $PY scripts/card_matches_weights.py "$W/pack/mean$seed/model.json" "$W/pack/weights.safetensors"; do
      try=$((try + 1)); [ "$try" -lt 3 ] || { echo "run $seed: $from.* kept changing while copied"; return 1; }
      sleep 2
    done
    cp "$W/train$seed.log" "$W/pack/mean$seed/train.log"
    for f in log.csv summary.json config.json; do
      [ ! -f "$W/mean$seed/$f" ] || cp "$W/mean$seed/$f" "$W/pack/mean$seed/"
    done
    $PY scripts/split_safetensors.py split "$W/pack/weights.safetensors" "$W/pack/mean$seed.model" --max-mb 15 \
      >/dev/null
    rm -f "$W/pack/weights.safetensors"
    kept+=("mean$seed" "mean$seed.json")
    cp "$W/mean$seed.json" "$W/pack/"
    echo "packaged run $seed from $from.* after $(( $(date +%s) - T0 )) s"
  done
  tar -czf "$W/pack/runs$STEP.tar.gz" -C "$W/pack" "${kept[@]}"
  mv "$W/pack"/*.part*.safetensors "$W/pack/runs$STEP.tar.gz" "$OUT/" 2>/dev/null || true
}
# the packer stops at the stop file, not by a signal, which would leave a half-done package writing beside the last one
rm -f "$W/pack.stop"
( tick=0; while [ ! -f "$W/pack.stop" ]; do
    sleep 1; tick=$((tick + 1)); [ $((tick % PROGRESS_SECONDS)) -ne 0 ] || package || true
  done ) &
PACKER=$!
status=0
for pid in "${PIDS[@]}"; do wait "$pid" || status=$?; done  # not a bare wait: it would wait for the tee too
touch "$W/pack.stop"
wait "$PACKER" || true
for seed in $RUN_SEEDS; do
  tail -3 "$W/train$seed.log"
  [ -f "$W/mean$seed/model.safetensors" ] || { echo "run $seed left no model"; status=1; }
done
package
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null || true
echo "done after $(( $(date +%s) - T0 )) s, status $status"
exit $status
