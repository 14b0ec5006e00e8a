#!/usr/bin/env bash
# A training set grown by new phantom groups: the groups generated into WORK_DIR/data_NAME (scripts/
# generate_phantom_groups.sh), the cases of BASE_DATA linked beside them, and BASE_SPLIT extended by the new cases
# into WORK_DIR/NAME/split.json (scripts/extend_split.py, which refuses counts other than TRAIN and VALIDATION).
# Usage: bash scripts/extend_patient_set.sh WORK_DIR BASE_DATA BASE_SPLIT NAME TRAIN VALIDATION FIRST_GROUP \
#          "GROUP SEED CASES ANATOMY DOMAIN" ...
set -euo pipefail
W=$1 BASE_DATA=$2 BASE_SPLIT=$3 NAME=$4 TRAIN=$5 VALIDATION=$6 FIRST_GROUP=$7
shift 7
bash scripts/generate_phantom_groups.sh "$W" "$W/data_$NAME" "$FIRST_GROUP" "$@"
for d in "$BASE_DATA"/case_*; do ln -sfn "$(realpath "$d")" "$W/data_$NAME/$(basename "$d")"; done
mkdir -p "$W/$NAME"
.venv/bin/python scripts/extend_split.py "$BASE_SPLIT" "$W/data_$NAME" "$W/$NAME/split.json" \
  --train "$TRAIN" --validation "$VALIDATION"
