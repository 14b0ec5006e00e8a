#!/usr/bin/env bash
# What a training call on the lent GPU machine carries (docs/training.md, "On the GPU machine"): SimpleITK's wheel for
# its Python 3.12 in .whl/, and the shipped mean network in half precision with its card in .gpu/init/ (the tracked tree
# and SimpleITK leave no room for the 19.5 MB float32 file; scripts/gpu_soup.sh brings it back to float32 there).
# Both folders are ignored through .git/info/exclude. A call carries the working tree too, all of it under 64 MiB: the
# tracked files the call does not need (NOT_NEEDED: the shipped weights, the sample case, docs/ and Testing/) must be
# out of the working tree during the call. The script prints what would travel without them and fails above the limit.
# Usage: bash scripts/prepare_gpu_carry.sh [--strip]   (--strip also deletes NOT_NEEDED's tracked files, refusing where
# one has uncommitted changes; call the device tool with carry [".whl", ".gpu"]; then bring them back with
# `bash scripts/prepare_gpu_carry.sh --restore`, which is `git checkout -- "${NOT_NEEDED[@]}"`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
LIMIT_BYTES=67108864  # the device tool's 64 MiB for the working tree and the carried folders together
NOT_NEEDED=(Resources/Models/*.safetensors Resources/SampleData docs Testing)
if [ "${1:-}" = "--restore" ]; then
  git checkout -- "${NOT_NEEDED[@]}"
  echo "restored: ${NOT_NEEDED[*]}"
  exit 0
fi
for entry in /.whl/ /.gpu/; do
  grep -qxF "$entry" .git/info/exclude 2>/dev/null || echo "$entry" >> .git/info/exclude
done
mkdir -p .whl .gpu/init
ls .whl/simpleitk-*.whl >/dev/null 2>&1 || $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "SimpleITK==$($PY -c 'import SimpleITK; print(SimpleITK.__version__)')"
$PY - <<'EOF'
import shutil
import torch
from safetensors import safe_open
from safetensors.torch import save_file
name = "dcediff_cpu_phantom_regression"
with safe_open(f"Resources/Models/{name}.safetensors", framework="pt") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k).to(torch.float16) for k in f.keys()}
save_file(tensors, f".gpu/init/{name}.fp16.safetensors", metadata=meta)
shutil.copy(f"Resources/Models/{name}.json", f".gpu/init/{name}.json")
EOF
EXCLUDE=()
for path in "${NOT_NEEDED[@]}"; do EXCLUDE+=(":!$path"); done
# untracked files that git does not ignore travel too (a scratch file in the checkout counts against the 64 MiB)
tracked=$(git ls-files -z --cached --others --exclude-standard -- . "${EXCLUDE[@]}" | xargs -0 du -cb | tail -1 \
  | cut -f1)
carried=$(du -cb .whl .gpu | tail -1 | cut -f1)
echo "would travel: $(( (tracked + carried) / 1000000 )) MB of $(( LIMIT_BYTES / 1000000 )) MB (tracked" \
  "$((tracked / 1000000)) MB without ${NOT_NEEDED[*]}, carried $((carried / 1000000)) MB)"
if [ $((tracked + carried)) -gt $LIMIT_BYTES ]; then
  echo "too large for one call: add what the call does not need to NOT_NEEDED" >&2
  exit 1
fi
if [ "${1:-}" = "--strip" ]; then
  if [ -n "$(git status --porcelain -- "${NOT_NEEDED[@]}")" ]; then
    echo "not stripped: uncommitted changes in ${NOT_NEEDED[*]} (commit them first)" >&2
    exit 1
  fi
  git ls-files -z -- "${NOT_NEEDED[@]}" | xargs -0 rm -f
  echo "stripped from the working tree: ${NOT_NEEDED[*]}; after the call: bash scripts/prepare_gpu_carry.sh --restore"
fi
