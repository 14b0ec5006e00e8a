"""Store the training cases' input statistics (the out-of-distribution reference) in a model card.

Usage: .venv/bin/python scripts/add_input_statistics.py MODEL --data DATA_DIR [--split RUN/split.json]
           [--cache DIR] [--kind phantom|real] [--description TEXT]

MODEL is the model's .safetensors, .json card or common stem. The training cases are the "train" list of
``--split`` (a training run's split.json), or every case of DATA_DIR without it. Each case is loaded as training
loads it (``DCEDiffLib.training.case_data.load_case``: preprocessed folders as they are, raw cases preprocessed and
cached in ``--cache``), measured with ``DCEDiffLib.ood.input_statistics`` and aggregated with
``training_statistics``; the card gets ``input_statistics`` and ``data_domain`` and is rewritten atomically. The
card's ``weights_sha256`` covers only the .safetensors, so the model stays loadable. See docs/ood.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from DCEDiffLib import ood  # noqa: E402
from DCEDiffLib.errors import InputError, ModelFileError  # noqa: E402
from DCEDiffLib.modalities import INPUT_MODALITIES  # noqa: E402


def case_geometry(case_dir: Path, conditions) -> dict:
    """Voxel size and field of view of each original series of a case folder (file headers; a preprocessed
    folder only knows its T2W; DICOM folders are skipped)."""
    from DCEDiffLib.training.case_data import find_case_inputs

    meta_path = case_dir / "preprocess.json"
    if meta_path.is_file():
        geometry = json.loads(meta_path.read_text(encoding="utf-8")).get("t2w_geometry", {})
        size, spacing = geometry.get("size"), geometry.get("spacing")
        if not size or not spacing:
            return {}
        return {"t2w": {"inplane_mm": (spacing[0] + spacing[1]) / 2, "slice_mm": spacing[2],
                        "fov_mm": max(size[0] * spacing[0], size[1] * spacing[1])}}
    found = find_case_inputs(case_dir)
    return {m: ood.series_geometry(found[m]) for m in conditions if m in found}


def training_case_dirs(data_dir: Path, split_path) -> list:
    """The training case folders: the split's "train" list, or every case of the data folder."""
    from DCEDiffLib.training.case_data import list_case_dirs

    cases = list_case_dirs(data_dir)
    if split_path is None:
        return cases
    try:
        split = json.loads(Path(split_path).read_text(encoding="utf-8"))
        names = list(split["train"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--split {split_path}: not a readable split.json with a 'train' list ({exc}); expected "
                         "the split.json of a training run") from exc
    by_name = {p.name: p for p in cases}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"--split {split_path}: training case(s) {', '.join(missing[:5])} not found in {data_dir}; "
                         "expected the data folder the model was trained on")
    return [by_name[n] for n in names]


def _case_record(case_dir: Path) -> dict:
    """What a training case says of itself: a phantom case's case.json (generator, domain, anatomy family)."""
    path = case_dir / "case.json"
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def data_domain(data_dir: Path, kind, description, case_dirs) -> dict:
    """What the model was trained on, for the card (kind, description, where, how many cases).

    The kind comes from the training cases themselves (a phantom case's case.json says ``synthetic``), not from
    the data folder: a folder that merges several phantom runs (links to their cases) has no dataset.json, and
    guessing "real" there once labelled a phantom-only model as trained on real exams.
    """
    dataset = {}
    if (data_dir / "dataset.json").is_file():
        dataset = json.loads((data_dir / "dataset.json").read_text(encoding="utf-8"))
    records = [_case_record(Path(d)) for d in case_dirs]
    synthetic = [r for r in records if r.get("synthetic")]
    if not kind:
        kind = "phantom" if len(synthetic) == len(records) else ("real" if not synthetic else "mixed")
    generators = sorted({f"{r.get('generator', 'DCEDiff phantom')} v{r.get('generator_version', '?')}"
                         for r in synthetic})
    domains = sorted({str(r.get("domain", "?")) for r in synthetic})
    families = sorted({str(r.get("anatomy", {}).get("family", "procedural")) for r in synthetic
                       if isinstance(r.get("anatomy"), dict)})
    if not description:
        if kind == "phantom":
            description = (f"{', '.join(generators)}, domain {' and '.join(domains)}, anatomy "
                           f"{' and '.join(families)} (see docs/phantom.md): simulated prostate MRI, no real exam; "
                           "real exams differ and are expected to be flagged")
        elif kind == "mixed":
            description = (f"{len(synthetic)} phantom cases ({', '.join(generators)}) and "
                           f"{len(records) - len(synthetic)} real exams (no scanner/site description given)")
        else:
            description = "real exams (no scanner/site description given)"
    domain = {"kind": kind, "description": description, "training_cases": len(records), "data": data_dir.name,
              "phantom_cases": len(synthetic)}
    if synthetic:
        domain.update(phantom_domains=domains, anatomy_families=families)
    for key in ("generator", "generator_version", "domain", "seed"):
        if key in dataset:
            domain[key] = dataset[key]
    return domain


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model's .safetensors, .json card or stem")
    parser.add_argument("--data", required=True, help="the data folder the model was trained on")
    parser.add_argument("--split", help="the run's split.json (its 'train' cases are used; default: every case)")
    parser.add_argument("--cache", help="cache folder for preprocessed raw cases (e.g. the training run's --cache)")
    parser.add_argument("--kind", choices=("phantom", "real", "mixed"), help="data domain (default: from "
                        "dataset.json: phantom when synthetic, else real)")
    parser.add_argument("--description", help="data domain in words (scanners, sites, protocols)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (InputError, ModelFileError) as exc:
        print(f"add_input_statistics: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from DCEDiffLib.atomic import write_text_atomic
    from DCEDiffLib.diffusion.model_files import check_card, model_paths
    from DCEDiffLib.training.case_data import load_case

    _, card_path = model_paths(args.model)
    if not card_path.is_file():
        raise ModelFileError(f"model card {card_path} is missing; expected MODEL to be a model's .safetensors, "
                             ".json or stem")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelFileError(f"model card {card_path} is not valid JSON ({exc})") from None
    check_card(card, card_path)
    conditions = list(card["conditions"])
    unknown = [m for m in conditions if m not in INPUT_MODALITIES]
    if unknown:
        raise ModelFileError(f"model card {card_path}: conditions {unknown}; expected some of {INPUT_MODALITIES}")
    data_dir = Path(args.data)
    case_dirs = training_case_dirs(data_dir, args.split)
    channels = [INPUT_MODALITIES.index(m) for m in conditions]
    per_case = []
    for index, case_dir in enumerate(case_dirs):
        arrays = load_case(case_dir, Path(args.cache) if args.cache else None)
        per_case.append(ood.input_statistics(
            arrays.conditions[channels], conditions, adc_raw=arrays.raw("adc") if "adc" in conditions else None,
            geometry=case_geometry(case_dir, conditions),
            spacing_mm=arrays.grid.get("spacing", ood.DEFAULT_SPACING_MM)))
        print(f"\r{index + 1}/{len(case_dirs)} cases measured", end="", file=sys.stderr, flush=True)
    print("", file=sys.stderr)
    domain = data_domain(data_dir, args.kind, args.description, case_dirs)
    statistics = ood.training_statistics(per_case, data_description=domain["description"])
    scores = [ood.ood_score(s, statistics)["score"] for s in per_case]  # in-sample: how tight the thresholds are
    updated = dict(card, input_statistics=statistics, data_domain=domain)
    check_card(updated, card_path)
    write_text_atomic(card_path, json.dumps(updated, indent=2))
    print(json.dumps({"card": str(card_path), "training_cases": len(per_case),
                      "features": len(statistics["features"]),
                      "training_case_scores": {"max": max(scores), "median": sorted(scores)[len(scores) // 2]},
                      "data_domain": domain}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
