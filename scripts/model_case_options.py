"""The command line shared by the scripts that run one model over named validation cases of a data folder
(lesion_contrast.py, prostate_r_by_zone.py): MODEL --data DIR --cases NAME ... [--cache DIR] [--json OUT]."""

from __future__ import annotations

import argparse
from pathlib import Path


def model_on_cases_parser(doc: str) -> argparse.ArgumentParser:
    """A parser for MODEL, --data, --cases, --cache and --json, described by the first line of ``doc``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("model", help="a model's .safetensors, .json card or common stem")
    parser.add_argument("--data", type=Path, required=True, help="a folder of cases (phantom output)")
    parser.add_argument("--cases", nargs="+", required=True, help="case folder names inside --data")
    parser.add_argument("--cache", type=Path, help="the preprocessing cache (raw cases are registered once)")
    parser.add_argument("--json", type=Path, help="write the per-case values here")
    return parser
