#!/usr/bin/env bash
# The forty-eighth step's second half, here (docs/model_quality.md): scripts/finish_soup.sh for the two GPU
# fine-tunes of scripts/gpu_soup48.sh (seeds 48 and 49), which started from 8b19f24d… (commit 9d5f882); the residual
# +200 steps on the 480 patients, as the forty-sixth step did.
# Usage: bash scripts/finish_soup48.sh [WORK_DIR=runs] DEVICE_FILES
set -euo pipefail
STEP=48 RUN_SEEDS="48 49" SHIPPED=9d5f882 INIT_DIR="${1:-runs}/ship46/init" \
  exec bash "$(dirname "$0")/finish_soup.sh" "$@"
