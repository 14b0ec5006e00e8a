"""Training speed with and without batch-building worker processes (config ``loader_workers``, training/step_loader.py).

Trains the same short run from the same start once per worker count on the cases of a data folder (cached, as
`dcediff train --cache` leaves them) and prints steps per second. The weights end bit-identical whatever the count
(Testing/test_training.py), so only the time differs.
Usage: python scripts/time_loader_workers.py --config CONFIG --data DATA --cache CACHE [--cases 24] [--steps 60]
         [--workers 0 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    from DCEDiffLib.training import distributed
    from DCEDiffLib.training.case_data import list_case_dirs, load_case
    from DCEDiffLib.training.config import load_config, make_config
    from DCEDiffLib.training.trainer import Trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    cases = [load_case(d, args.cache) for d in list_case_dirs(args.data)[:args.cases + 2]]
    data = {"split": {"train": [c.name for c in cases[2:]], "validation": [c.name for c in cases[:2]], "test": []},
            "train": cases[2:], "validation": cases[:2]}
    results = {}
    for workers in args.workers:
        config = load_config(args.config)
        config.update({"iterations": args.steps, "loader_workers": workers, "validate_every": 10 ** 6,
                       "checkpoint_every": 10 ** 6, "lesion_validation": False, "init_weights": ""})
        config = make_config(config)
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(config, Path(out), data, distributed.setup(args.device), show_progress=False)
            started = time.perf_counter()
            trainer.run()
            seconds = time.perf_counter() - started
            trainer.close()
        results[workers] = round(args.steps / seconds, 3)
        print(f"loader_workers {workers}: {results[workers]} steps/s ({args.steps} steps in {seconds:.1f} s, "
              "the final validation and export included)", flush=True)
    print(json.dumps({"steps_per_second_by_workers": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
