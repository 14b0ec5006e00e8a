#!/usr/bin/env bash
# The forty-eighth step's GPU half (docs/model_quality.md), as it ran on the lent H200: scripts/gpu_soup.sh with 288
# new patients (seeds 2100-2105 procedural A, 2106-2110 real anatomy, 2111-2115 procedural B, 18 each) and two
# fine-tunes side by side (seeds 48 and 49, configs/gpu_residual_mean_soup48.json), no crop-building workers.
# Usage there: bash scripts/gpu_soup48.sh [SECONDS_FOR_THE_WHOLE_CALL=540]; then here bash scripts/finish_soup48.sh.
set -euo pipefail
STEP=48 RUN_SEEDS="48 49" FIRST_SEED=2100 GROUPS_A=6 GROUPS_P=5 GROUPS_B=5 CASES=${CASES:-18} LOADER_WORKERS=0 \
  ITERATIONS=200000 \
  CONFIG=configs/gpu_residual_mean_soup48.json W=${W:-/tmp/w48} exec bash "$(dirname "$0")/gpu_soup.sh" "$@"
