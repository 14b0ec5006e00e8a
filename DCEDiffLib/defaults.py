"""The sampling defaults every entry point shares (CLI, pipeline, evaluation, benchmark, Slicer module).

One place, no torch import, so the Slicer module can read it before torch is installed. Why these values:
docs/diffusion.md (warm start, steps) and docs/performance.md (time per volume).
"""

SAMPLERS = ("dpmpp", "ddim", "ddpm", "x0")  # every sampler a user can choose
DEFAULT_SAMPLER = "dpmpp"   # DPM-Solver++(2M)
DEFAULT_STEPS = 5           # network evaluations per sample (with the warm start; 10 gain ≈ 0.4 dB at twice the time)
DEFAULT_SAMPLES = 1         # samples averaged by `dcediff synthesize`, the Slicer module and `dcediff evaluate`
# `dcediff demo` runs what `dcediff synthesize` runs: for the shipped card 8 samples add 0.02-0.03 dB and no r, and
# their spread is a tenth of the error (docs/model_quality.md, "The curve over K")
DEMO_SAMPLES = 1
