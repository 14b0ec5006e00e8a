#!/usr/bin/env bash
# The model files a commit shipped (the residual card, the regression mean, and the expected-error trees where that
# commit has them) copied out of git into DIR, each unless it is there already: the start of a fine-tune step
# (scripts/finetune_lesions.sh, finetune_soup49.sh, finish_soup.sh).
# Usage: bash scripts/fetch_shipped_init.sh DIR COMMIT
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:?DIR: where the files go} COMMIT=${2:?COMMIT: the commit that shipped them}
mkdir -p "$DIR"
for f in dcediff_cpu_phantom dcediff_cpu_phantom_regression; do
  for ext in safetensors json; do
    [ -f "$DIR/$f.$ext" ] || git show "$COMMIT:Resources/Models/$f.$ext" > "$DIR/$f.$ext"
  done
done
# A card that names a learned expected-error map needs its tree file beside it (shipped since the twentieth step)
T=dcediff_cpu_phantom.error_trees.safetensors
if [ ! -f "$DIR/$T" ] && git cat-file -e "$COMMIT:Resources/Models/$T" 2>/dev/null; then
  git show "$COMMIT:Resources/Models/$T" > "$DIR/$T"
fi
