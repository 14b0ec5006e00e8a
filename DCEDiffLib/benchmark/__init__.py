"""Speed, memory and quality measurements of DCEDiff's synthesis (``dcediff benchmark``).

One concern per module: ``machine`` (what it ran on), ``memory`` (peak memory), ``timing`` (repeat timing),
``throughput`` (forward passes, FLOPs), ``variants`` (forward-pass optimisations), ``naive_reference`` (the
paper's sampling loop written plainly, the baseline), ``holdout`` (held-out phantom cases), ``sampler_sweep``
(time and quality per sampler and step count), ``end_to_end`` (one volume through the whole pipeline),
``targets`` (PASS/FAIL of the project's targets), ``report`` (benchmark.json and benchmark.md), ``runner``
(all of it in one process) and ``gpu`` (the paper preset on a CUDA GPU against its measured matmul peak;
``scripts/gpu_benchmark.py``).
"""
