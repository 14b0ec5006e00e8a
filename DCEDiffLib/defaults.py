"""The sampling defaults every entry point shares (CLI, pipeline, evaluation, benchmark, Slicer module).

One place, no torch import, so the Slicer module can read it before torch is installed. Why these values:
docs/diffusion.md (warm start, steps) and docs/performance.md (time per volume).
"""

DEFAULT_SAMPLER = "dpmpp"   # DPM-Solver++(2M)
DEFAULT_STEPS = 10          # network evaluations per sample
DEFAULT_SAMPLES = 1         # samples averaged by `dcediff synthesize`, the Slicer module and `dcediff evaluate`
DEMO_SAMPLES = 2            # `dcediff demo` averages more samples: a smoother result and an uncertainty map
