#!/usr/bin/env python3
"""GPU benchmark in one call: the paper preset, 1000 ancestral steps × 16 slices of 160 × 160, bf16, and the
fraction of the GPU's measured bf16 matmul throughput it reaches (with and without torch.compile / CUDA graphs).

    python scripts/gpu_benchmark.py --out out/gpu            # random paper-preset weights (time does not
                                                             # depend on the weights)
    python scripts/gpu_benchmark.py --out out/gpu --model M  # a trained model instead

Writes out/gpu/gpu_benchmark.json and prints one line per compile mode and the best. The same as
``dcediff benchmark --gpu-paper --out DIR``; the logic is ``DCEDiffLib/benchmark/gpu.py`` (tested on CPU).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from DCEDiffLib.benchmark.gpu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
