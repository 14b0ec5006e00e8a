#!/usr/bin/env bash
# The twenty-eighth step (docs/model_quality.md, "the ADC in absolute units as an input of the mean"): the shipped
# mean (d60c75dd…, commit 647995c) with the absolute-ADC channel added at zero weight (diffusion/absolute_adc.py),
# fine-tuned with the fifth step's recipe on the 96 patients of scripts/finetune_physiology.sh (fp32), then the shipped
# residual network +200 steps around it. The data are generated here if absent (~10 min).
# Usage: bash scripts/finetune_absolute_adc.sh [WORK_DIR=runs]
set -euo pipefail
cd "$(dirname "$0")/.."
SHIPPED=647995c INIT=absolute_adc MEAN_RUN=mean28 RESIDUAL_RUN=residual28 \
  MEAN_CONFIG=configs/cpu_residual_mean_absolute_adc.json RESIDUAL_CONFIG=configs/cpu_residual_absolute_adc.json \
  exec bash scripts/finetune_lesions.sh "${1:-runs}"
