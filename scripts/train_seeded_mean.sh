#!/usr/bin/env bash
# One seeded fine-tune of a soup step on this CPU (scripts/finetune_soup49.sh, scripts/finetune_union50.sh): CONFIG
# with its "runs/" paths pointed at WORK_DIR and its seed set to SEED, written to WORK_DIR/RUN.json, then trained on
# WORK_DIR/DATA with SPLIT (a split.json, copied into the run folder) for at most MINUTES. A run folder that already
# holds model.safetensors is left as it is, so a step that was cut off resumes at its next run. PRECISION (auto, bf16
# or fp32), when set, replaces the config's mixed_precision: on a CPU without native bf16, bf16 autocast is emulated
# and more than 15 times slower (docs/training.md).
# Usage: [PRECISION=fp32] bash scripts/train_seeded_mean.sh WORK_DIR RUN CONFIG DATA SPLIT SEED MINUTES
set -euo pipefail
cd "$(dirname "$0")/.."
W=$1 RUN=$2 CONFIG=$3 DATA=$4 SPLIT=$5 SEED=$6 MINUTES=$7
[ -f "$W/$RUN/model.safetensors" ] && exit 0
mkdir -p "$W/$RUN"
cp "$SPLIT" "$W/$RUN/split.json"
.venv/bin/python - "$W" "$RUN" "$CONFIG" "$SEED" <<'EOF'
import json, os, sys
w, run, config, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = json.load(open(config))
c["mixed_precision"] = os.environ.get("PRECISION") or c.get("mixed_precision", "auto")
c["init_weights"] = c["init_weights"].replace("runs/", f"{w}/", 1)
c["seed"] = seed
json.dump(c, open(f"{w}/{run}.json", "w"), indent=2)
EOF
.venv/bin/dcediff train --config "$W/$RUN.json" --data "$W/$DATA" --out "$W/$RUN" --cache "$W/cache" \
  --max-minutes "$MINUTES" --quiet
