#!/usr/bin/env bash
# Phantom patients in numbered groups, linked into one data folder as case_<group><two digits> (the training scripts'
# splits select by that group digit). A group whose folder already holds a dataset.json is not generated again.
# Usage: bash scripts/generate_phantom_groups.sh WORK_DIR DATA_DIR FIRST_GROUP "NAME SEED CASES ANATOMY DOMAIN" ...
#   (each group is generated into WORK_DIR/physiology/NAME; at most 100 cases per group)
set -euo pipefail
W=$1 DATA=$2 i=$3
shift 3
D=${D:-.venv/bin/dcediff}
mkdir -p "$W/physiology" "$DATA"
for spec in "$@"; do
  set -- $spec
  [ -f "$W/physiology/$1/dataset.json" ] || \
    $D phantom --cases "$3" --seed "$2" --anatomy "$4" --domain "$5" --no-dce-series --out "$W/physiology/$1"
  for d in "$W/physiology/$1"/case_*; do n=$(basename "$d"); ln -sfn "$(realpath "$d")" "$DATA/case_$i${n#case_0}"; done
  i=$((i + 1))
done
