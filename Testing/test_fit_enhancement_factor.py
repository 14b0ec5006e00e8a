"""scripts/fit_enhancement_factor.py: the two variants scored on held-out patients, the better one written into a
copy of a card, and a card that cannot take the factor refused."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import fit_enhancement_factor as fit  # noqa: E402

CASE = ROOT / "Resources" / "SampleData" / "phantom_case"


def _patients(error_of, count=6, voxels=3000, seed=0):
    """Per patient: an edge estimate, its scale, the drawn enhancement and an |error| made by ``error_of``."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        edge = rng.uniform(0.01, 0.05, voxels)
        drawn = rng.gamma(2.0, 0.1, voxels)
        cases.append({"edge": edge, "scale": np.ones(voxels), "drawn": drawn,
                      "error": error_of(edge, drawn) * rng.uniform(0.7, 1.3, voxels)})
    return cases


def test_the_held_out_scores_pick_the_variant_that_matches_where_the_error_comes_from():
    only_drawn = fit.held_out_scores(_patients(lambda edge, drawn: 0.01 + 0.2 * drawn), bins=8, folds=3)
    assert only_drawn["enhancement alone"]["spearman"] > only_drawn["edges x enhancement"]["spearman"] + 0.1
    assert only_drawn["enhancement alone"]["spearman"] > only_drawn["card as it is"]["spearman"] + 0.3
    assert only_drawn["enhancement alone"]["ratio"] == pytest.approx(1.0, abs=0.1)  # the size kept
    both = fit.held_out_scores(_patients(lambda edge, drawn: edge * (0.5 + 4 * drawn)), bins=8, folds=3)
    assert both["edges x enhancement"]["spearman"] > both["enhancement alone"]["spearman"] + 0.1
    assert all(row["cases"] == 6 for row in both.values())


def test_the_fit_writes_the_chosen_factor_into_the_card_and_refuses_a_card_twice(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.modalities import INPUT_MODALITIES
    from DCEDiffLib.preprocess import preprocess_case, write_preprocessed
    from Testing.random_model import save_narrow_copy_of_the_shipped_card

    model = save_narrow_copy_of_the_shipped_card(tmp_path)  # the shipped tables on narrow random networks ...
    card = json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))
    for table in card["error_model"]["targets"].values():
        table.pop("enhancement_factor", None)  # ... without the factor this script adds
    model.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    data = tmp_path / "data"  # the one shipped case four times, preprocessed once (registration skipped: fast)
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in INPUT_MODALITIES + ("dce_early", "dce_late", "labels")}
    preprocessed = preprocess_case(inputs, register=False)
    for index in range(4):  # enough for two folds
        write_preprocessed(preprocessed, data / f"case_{index:03d}")
        shutil.copy(CASE / "case.json", data / f"case_{index:03d}" / "case.json")
    assert fit.main([str(model), "--data", str(data), "--folds", "2"]) == 0
    written = json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))
    entry = written["error_model"]["targets"]["dce_early"]["enhancement_factor"]
    assert entry["variant"] in fit.VARIANTS and len(entry["nodes"]) >= 2 and entry["held_out"]["card as it is"]
    kept = written["error_model"]["targets"]["dce_early"]
    assert kept["t1pre_level_factor"] == card["error_model"]["targets"]["dce_early"]["t1pre_level_factor"]
    loaded = load_model(model)  # the card loads, and its map now needs (and gets) the drawn enhancement
    conditions = np.random.default_rng(0).uniform(-1, 1, (4, 2, 32, 32)).astype(np.float32)
    assert np.all(np.isfinite(synthesize_volume(loaded, conditions, seed=0, device="cpu").expected_error))
    with pytest.raises(SystemExit, match="already has an enhancement_factor"):
        fit.main([str(model), "--data", str(data)])
