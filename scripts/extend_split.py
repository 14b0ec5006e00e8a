"""A training split extended by every case of a data folder that the base split does not name.

Usage: .venv/bin/python scripts/extend_split.py BASE_SPLIT DATA_DIR OUT_SPLIT --train N --validation M

The base split's "train" list keeps its order and gets the new case names (sorted) after it; "validation" is kept as
it is; "test" is empty (test sets are generated fresh, docs/model_quality.md). Refuses (exit 2) when the counts are
not N and M, so that a half-generated data folder does not silently train on fewer patients.
"""

import argparse
import json
import pathlib
import sys


def extended_split(base: dict, names) -> dict:
    """The base split with every name it does not hold appended to its training list."""
    extra = [n for n in sorted(names) if n not in base["train"] and n not in base["validation"]]
    return {"train": base["train"] + extra, "validation": base["validation"], "test": []}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_split", type=pathlib.Path)
    parser.add_argument("data_dir", type=pathlib.Path)
    parser.add_argument("out_split", type=pathlib.Path)
    parser.add_argument("--train", type=int, required=True, help="expected number of training cases")
    parser.add_argument("--validation", type=int, required=True, help="expected number of validation cases")
    args = parser.parse_args(argv)
    base = json.loads(args.base_split.read_text())
    split = extended_split(base, (p.name for p in args.data_dir.iterdir()))
    counts = {k: len(v) for k, v in split.items()}
    if counts["train"] != args.train or counts["validation"] != args.validation:
        print(f"{args.data_dir}: expected {args.train} training and {args.validation} validation cases, found "
              f"{counts['train']} and {counts['validation']}", file=sys.stderr)
        return 2
    args.out_split.write_text(json.dumps(split, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
