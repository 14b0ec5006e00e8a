"""Time the U-Net forward with the textbook ResBlock against the shipped fast path, per chunk size.

Usage: .venv/bin/python scripts/resblock_fastpath_probe.py [--batches 1,2,4,8,16] [--model M]
The fast path (``ResBlock.forward`` without autograd) folds GroupNorm's affine into the FiLM scale/shift (one
``addcmul`` pass instead of three) and runs SiLU and the residual add in place. Prints ms per 160×160 slice for
both, the speed-up and the largest output difference (docs/performance.md, P12/P13).
"""

import argparse
import time

import torch
import torch.nn.functional as F

from DCEDiffLib.diffusion import unet
from DCEDiffLib.diffusion.model_files import load_model
from DCEDiffLib.model_registry import resolve_model

FAST = unet.ResBlock.forward


def textbook(self, x, emb):
    """The block as written in guided diffusion: every element-wise step a new tensor."""
    h = self.in_conv(self._resample(F.silu(self.in_norm(x))))
    x = self._resample(x)
    scale, shift = self.emb(F.silu(emb))[..., None, None].chunk(2, dim=1)
    h = self.out_norm(h) * (1 + scale) + shift
    return self.skip(x) + self.out_conv(self.dropout(F.silu(h)))


def seconds_per_slice(network, batch: int, repeats: int) -> tuple:
    torch.manual_seed(0)
    x = torch.randn(batch, network.in_channels, 160, 160).contiguous(memory_format=torch.channels_last)
    gamma = torch.full((batch,), 0.5)
    with torch.inference_mode():
        network(x, gamma)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = network(x, gamma)
            times.append(time.perf_counter() - start)
    return min(times) / batch, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model")
    args = parser.parse_args()
    network = load_model(resolve_model(args.model)).network.eval().to(memory_format=torch.channels_last)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch in (int(b) for b in args.batches.split(",")):
        unet.ResBlock.forward = textbook
        slow, reference = seconds_per_slice(network, batch, args.repeats)
        unet.ResBlock.forward = FAST
        fast, out = seconds_per_slice(network, batch, args.repeats)
        print(f"batch {batch:>2}: textbook {slow * 1e3:.0f} ms/slice, fast path {fast * 1e3:.0f} ms/slice "
              f"({slow / fast:.2f}x), max |difference| {float((out - reference).abs().max()):.1e}", flush=True)


if __name__ == "__main__":
    main()
