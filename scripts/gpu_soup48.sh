#!/usr/bin/env bash
# The forty-eighth step (docs/model_quality.md), the part that runs on the GPU machine the `device` tool lends for
# about 15 minutes (docs/training.md): the forty-sixth step's soup recipe with far more training. On that machine,
# in one call:
#   1. SimpleITK from the carried wheel (.whl/), the shipped mean network from the carried half-precision copy
#      (.gpu/init/, brought back to float32: the tracked tree plus SimpleITK leave no room for the 19.5 MB original);
#   2. 288 new training patients (seeds 2100-2115: 6 groups procedural A, 5 real anatomy A, 5 procedural B, 18 each),
#      generated and preprocessed by 16 processes (scripts/generate_cached_groups.py); the last of each group
#      validates (16);
#   3. two fine-tunes of the shipped mean side by side on the one GPU (seeds 48 and 49,
#      configs/gpu_residual_mean_soup48.json: the forty-sixth step's recipe at batch 16), each stopped by time
#      (`dcediff train --max-minutes`) so that the whole call ends inside its limit;
#   4. each run's EMA model split into parts under the 16 MiB a returned file may have (scripts/split_safetensors.py),
#      with the run's card, log and summary, into $OUT.
# Before: bash scripts/prepare_gpu_carry.sh here (what the call carries). Usage there: bash scripts/gpu_soup48.sh
# [SECONDS_FOR_THE_WHOLE_CALL=540]. Here, a rehearsal on the CPU with tiny
# numbers: CASES=2 GROUPS_USED=2 DEVICE=cpu OUT=/tmp/out bash scripts/gpu_soup48.sh 150
# Then, here: bash scripts/finish_soup48.sh (joins, soups, averages with the shipped mean, trains the residual).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-540}
T0=$(date +%s)
OUT=${OUT:?OUT: the folder whose files come back}
W=${W:-/tmp/w48}
CASES=${CASES:-18} GROUPS_USED=${GROUPS_USED:-16} DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
exec > >(tee "$OUT/driver.log") 2>&1
if [ -d .whl ] && ! $PY -c "import SimpleITK" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
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
SPECS=("s48a0 2100 $CASES procedural A" "s48a1 2101 $CASES procedural A" "s48a2 2102 $CASES procedural A"
  "s48a3 2103 $CASES procedural A" "s48a4 2104 $CASES procedural A" "s48a5 2105 $CASES procedural A"
  "s48p0 2106 $CASES prostatex A" "s48p1 2107 $CASES prostatex A" "s48p2 2108 $CASES prostatex A"
  "s48p3 2109 $CASES prostatex A" "s48p4 2110 $CASES prostatex A"
  "s48b0 2111 $CASES procedural B" "s48b1 2112 $CASES procedural B" "s48b2 2113 $CASES procedural B"
  "s48b3 2114 $CASES procedural B" "s48b4 2115 $CASES procedural B")
if [ "$GROUPS_USED" -lt 16 ]; then  # the rehearsal: one group of each family, as far as GROUPS_USED goes
  SPECS=("${SPECS[0]}" "${SPECS[6]}" "${SPECS[11]}")
  SPECS=("${SPECS[@]:0:$GROUPS_USED}")
fi
$PY scripts/generate_cached_groups.py "$W" "$W/data" "$W/cache" "$W/split.json" 10 "${SPECS[@]}"
echo "data ready after $(( $(date +%s) - T0 )) s"
LEFT=$(( BUDGET - ($(date +%s) - T0) - 50 ))  # 50 s: loading the cases, the last validation, export and split
[ "$LEFT" -gt 30 ] || { echo "only $LEFT s left for training: stopping"; exit 3; }
MINUTES=$($PY -c "print(round($LEFT / 60, 2))")
echo "training for $MINUTES min per run"
PIDS=()
for seed in 48 49; do
  mkdir -p "$W/mean$seed"
  cp "$W/split.json" "$W/mean$seed/split.json"
  $PY - "$W" "$seed" <<'EOF'
import json, sys
w, seed = sys.argv[1], int(sys.argv[2])
c = json.load(open("configs/gpu_residual_mean_soup48.json"))
c["init_weights"] = f"{w}/init/dcediff_cpu_phantom_regression.safetensors"
c["seed"] = seed
json.dump(c, open(f"{w}/mean{seed}.json", "w"), indent=2)
EOF
  $PY -m DCEDiffLib.cli train --config "$W/mean$seed.json" --data "$W/data" --out "$W/mean$seed" --cache "$W/cache" \
    --device "$DEVICE" --max-minutes "$MINUTES" --quiet > "$W/train$seed.log" 2>&1 &
  PIDS+=($!)
done
status=0
for pid in "${PIDS[@]}"; do wait "$pid" || status=$?; done  # not a bare wait: it would wait for the tee too
for seed in 48 49; do
  tail -3 "$W/train$seed.log"
  cp "$W/train$seed.log" "$W/mean$seed/train.log"
  [ -f "$W/mean$seed/model.safetensors" ] || { echo "run $seed left no model"; status=1; continue; }
  $PY scripts/split_safetensors.py split "$W/mean$seed/model.safetensors" "$OUT/mean$seed.model" --max-mb 15
done
tar -czf "$OUT/runs48.tar.gz" -C "$W" split.json mean48.json mean49.json \
  $(cd "$W" && ls -d mean4[89]/{model.json,log.csv,summary.json,config.json,train.log} 2>/dev/null)
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null || true
echo "done after $(( $(date +%s) - T0 )) s, status $status"
exit $status
