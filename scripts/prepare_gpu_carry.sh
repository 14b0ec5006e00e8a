#!/usr/bin/env bash
# What a training call on the lent GPU machine carries (docs/training.md, "On the GPU machine"): SimpleITK's wheel for
# its Python 3.12 in .whl/, and the shipped mean network in half precision with its card in .gpu/init/ (the tracked tree
# and SimpleITK leave no room for the 19.5 MB float32 file; scripts/gpu_soup.sh brings it back to float32 there).
# Both folders are ignored through .git/info/exclude. Then it prints what would travel once the tracked files the call
# does not need are moved out (the model cards, the sample case, the report image): it must stay under 64 MiB.
# Usage: bash scripts/prepare_gpu_carry.sh   (then move those files out, call the device tool with carry [".whl",
# ".gpu"], and put them back with `git checkout -- Resources docs/dcediff-report.png`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
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
tracked=$(git ls-files -z -- . ':!Resources/Models/*.safetensors' ':!Resources/SampleData' ':!docs/dcediff-report.png' \
  | xargs -0 du -cb | tail -1 | cut -f1)
carried=$(du -cb .whl .gpu | tail -1 | cut -f1)
echo "would travel: $(( (tracked + carried) / 1000000 )) MB of 67 MB (tracked $((tracked / 1000000)) MB, carried" \
  "$((carried / 1000000)) MB)"
