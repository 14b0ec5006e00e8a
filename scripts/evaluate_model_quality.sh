#!/usr/bin/env bash
# The model-quality protocol (docs/model_quality.md): fresh test patients whose seeds are written here and beside
# the numbers, each candidate scored once, paired bootstrap intervals, the curve over K averaged samples.
# Usage: scripts/evaluate_model_quality.sh [WORK_DIR] [TRAINING_DATA]
#   WORK_DIR       where the fresh test sets and the evaluation folders go (default runs/quality)
#   TRAINING_DATA  the training cases (fits the mean-enhancement baseline; default runs/data_big)
# Optional: EPS_MODEL=path to the earlier ε-prediction model (the paper's objective) to add as a compared method.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs/quality}
TRAIN=${2:-runs/data_big}
D=.venv/bin/dcediff
MODEL=Resources/Models/dcediff_cpu_phantom
REGRESSION=Resources/Models/dcediff_cpu_phantom_regression
# Fresh seeds, never used for training, validation or tuning (training used 2026 and 2027; validation its split).
# Used once each: 91129/91130 (the 2026-11-29 model), 93001/93002 (the 2026-11-30 model). A new model needs new ones.
SEED_A=${SEED_A:-93001}
SEED_B=${SEED_B:-93002}
CASES_A=${CASES_A:-12}
CASES_B=${CASES_B:-8}
mkdir -p "$W"
[ -f "$W/testA/dataset.json" ] || $D phantom --cases "$CASES_A" --domain A --seed "$SEED_A" --no-dce-series --out "$W/testA"
[ -f "$W/testB/dataset.json" ] || $D phantom --cases "$CASES_B" --domain B --seed "$SEED_B" --no-dce-series --out "$W/testB"
COMPARE=(--compare regression="$REGRESSION")
if [ -n "${EPS_MODEL:-}" ]; then COMPARE+=(--compare eps_diffusion="$EPS_MODEL"); fi
C=(--cache "$W/cache" --baseline-data "$TRAIN" --overwrite)
# Default settings (1 sample) with every compared method, both domains.
$D evaluate --model "$MODEL" --data "$W/testA" "${COMPARE[@]}" "${C[@]}" --samples 1 --out "$W/A_K1"
$D evaluate --model "$MODEL" --data "$W/testB" "${COMPARE[@]}" "${C[@]}" --samples 1 --out "$W/B_K1"
# The curve over K averaged samples (K = 4 also gives the uncertainty calibration).
$D evaluate --model "$MODEL" --data "$W/testA" "${C[@]}" --samples 2 --no-fid --out "$W/A_K2"
$D evaluate --model "$MODEL" --data "$W/testA" "${C[@]}" --samples 4 --out "$W/A_K4"
# The cost of a missing PD (a model trained with augment.drop_pd; the others are run without PD for comparison).
$D evaluate --model "$MODEL" --data "$W/testA" "${C[@]}" --samples 1 --no-fid --missing pd --out "$W/A_K1_noPD"
for run in A_K1 B_K1 A_K2 A_K4 A_K1_noPD; do
  .venv/bin/python scripts/summarize_evaluation.py "$W/$run/metrics.json" \
      --title "$run (test seeds: A $SEED_A, B $SEED_B)" > "$W/$run/summary.md"
done
echo "seeds: domain A $SEED_A, domain B $SEED_B; summaries: $W/*/summary.md"
