#!/usr/bin/env python3
"""End to end on the shipped sample case with the registrations one after the other and side by side, alternated.

    .venv/bin/python scripts/time_registration_schedule.py [--pairs 3] [--out /tmp/e2e]

Each pair runs ``benchmark.end_to_end.time_end_to_end`` (the benchmark's end-to-end stage: load, registration with
the DCE frames, sampling, writing) first with one registration at a time, then with as many as the cores allow
(``registration_schedule``), and prints wall, sampling and other seconds. Alternating keeps a noisy machine's drift
out of the difference. A first run, not counted, warms the process (imports, the prostate model, file caches): it
took twice as long as the runs after it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    import DCEDiffLib.registration_schedule as schedule
    from DCEDiffLib.benchmark.end_to_end import time_end_to_end
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dcediff_registration_schedule"))
    args = parser.parse_args(argv)
    cores = schedule.available_cores
    warm = time_end_to_end(SAMPLE_CASE_DIR, args.out, None)
    print(f"warm-up (not counted): {warm['seconds']:.1f} s", flush=True)
    for pair in range(args.pairs):
        for label, count in (("one at a time", lambda: 1), (f"side by side ({cores()} cores)", cores)):
            schedule.available_cores = count
            result = time_end_to_end(SAMPLE_CASE_DIR, args.out, None)
            print(f"pair {pair + 1}, {label}: {result['seconds']:.1f} s (sampling {result['sampling_seconds']:.1f} s, "
                  f"other {result['other_seconds']:.1f} s)", flush=True)
    schedule.available_cores = cores
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
