"""The expected-error map (DCEDiffLib/diffusion/error_map.py): fitting, applying, the card field, the pipeline's
output files and the evaluation's calibration of it."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.diffusion.error_map import (ENHANCEMENT_FEATURE, ERROR_MODEL_VERSION, LEVEL_FEATURE, edge_feature,
                                            error_models_of_card, expected_error, fit_enhancement_factor,
                                            fit_error_model, level_factor)
from DCEDiffLib.errors import ModelFileError
from DCEDiffLib.evaluation.protocol import expected_error_calibration, spearman
from Testing.random_model import save_random_model

CASE = Path(__file__).resolve().parents[1] / "Resources" / "SampleData" / "phantom_case"


def test_edge_feature_is_the_in_plane_gradient_magnitude():
    volume = np.zeros((2, 8, 8), np.float32)
    volume[:, :, 4:] = 1.0  # a vertical edge between columns 3 and 4
    feature = edge_feature(volume)
    assert feature.shape == volume.shape
    np.testing.assert_allclose(feature[:, :, 3], 0.5)  # central difference (1 − 0) / 2
    np.testing.assert_allclose(feature[:, :, 0], 0.0)
    ramp = np.tile(np.arange(8, dtype=np.float32), (3, 8, 1))  # along x only; constant through slices
    np.testing.assert_allclose(edge_feature(ramp), 1.0)
    with pytest.raises(ValueError):
        edge_feature(np.zeros((8, 8)))


def test_fit_recovers_a_monotone_error_relation_and_ranks_the_error():
    rng = np.random.default_rng(0)
    feature = rng.gamma(2.0, 0.05, size=20000)
    error = np.abs(0.02 + 0.5 * feature + rng.normal(0, 0.02, feature.size))
    table = fit_error_model([feature[:10000], feature[10000:]], [error[:10000], error[10000:]], bins=10)
    assert table["version"] == ERROR_MODEL_VERSION and len(table["nodes"]) == 10
    assert np.all(np.diff(table["nodes"]) > 0) and np.all(np.diff(table["mean_abs_error"]) >= 0)
    # each bin's value is the mean error there: at a node the relation 0.02 + 0.5 f holds within noise
    for node, value in zip(table["nodes"], table["mean_abs_error"]):
        assert value == pytest.approx(0.02 + 0.5 * node, abs=0.01)
    predicted = np.interp(feature, table["nodes"], table["mean_abs_error"])
    assert spearman(predicted, error) > 0.8
    assert np.mean(error) / np.mean(predicted) == pytest.approx(1.0, abs=0.05)


def test_fit_refuses_too_few_or_unequal_voxels():
    with pytest.raises(ValueError):
        fit_error_model([np.ones(50)], [np.ones(50)], bins=10)
    with pytest.raises(ValueError):
        fit_error_model([np.ones(500)], [np.ones(400)], bins=10)


def test_expected_error_is_larger_at_edges():
    volume = np.zeros((1, 16, 16), np.float32)
    volume[:, 4:12, 4:12] = 1.0
    table = {"nodes": [0.0, 0.5], "mean_abs_error": [0.01, 0.2]}
    out = expected_error(volume, table)
    assert out[0, 8, 8] == pytest.approx(0.01) and out[0, 0, 0] == pytest.approx(0.01)
    assert out[0, 8, 4] > 0.15  # on the square's border


def test_radial_factor_recovers_a_larger_error_near_the_centre():
    """Errors twice the edge-based estimate inside the central ellipsoid and equal to it outside: the fitted factor
    says so, and the map applies it by distance from the grid centre (with a stated radius or the default)."""
    from DCEDiffLib.diffusion.error_map import fit_radial_factor
    from DCEDiffLib.ood import gland_radius

    rng = np.random.default_rng(3)
    radius = gland_radius((16, 160, 160))
    estimate = rng.uniform(0.01, 0.05, radius.shape)
    error = estimate * np.where(radius < 1.0, 2.0, 1.0) * rng.uniform(0.5, 1.5, radius.shape)
    radial = fit_radial_factor([estimate], [error], [radius])
    factor = dict(zip(radial["nodes"], radial["factor"]))
    inner = [f for r, f in factor.items() if r < 1.0]
    outer = [f for r, f in factor.items() if r > 1.5]
    assert inner and outer and all(f == pytest.approx(2.0, rel=0.05) for f in inner)
    assert all(f == pytest.approx(1.0, rel=0.05) for f in outer)
    flat = np.full((16, 160, 160), 0.5, np.float32)  # no edges: the table's first value everywhere
    table = {"nodes": [0.0, 0.5], "mean_abs_error": [0.01, 0.2], "radial": radial}
    out = expected_error(flat, table)
    assert out[8, 80, 80] == pytest.approx(0.01 * np.interp(radius[8, 80, 80], radial["nodes"], radial["factor"]))
    assert out[8, 80, 80] > 1.8 * out[8, 5, 5] and out[8, 5, 5] == pytest.approx(0.01, rel=0.06)
    np.testing.assert_allclose(expected_error(flat, table, radius=np.zeros_like(radius)),
                               0.01 * radial["factor"][0], rtol=1e-5)
    with pytest.raises(ValueError):
        fit_radial_factor([estimate[:1]], [error[:1]], [radius[:1, :2, :2]])


def card_with(block):
    return {"targets": ["dce_early", "dce_late"], "error_model": block}


def good_block():
    table = {"nodes": [0.0, 0.1, 0.3], "mean_abs_error": [0.01, 0.02, 0.05]}
    return {"version": ERROR_MODEL_VERSION, "feature": "x", "targets": {"dce_early": table, "dce_late": table}}


def test_card_error_model_is_checked():
    assert error_models_of_card({"targets": ["dce_early"]}, ["dce_early"]) is None
    radial = good_block()
    radial["targets"]["dce_early"] = dict(radial["targets"]["dce_early"], radial={"nodes": [0.4, 1.2], "factor": [2.0, 1.0]})
    assert error_models_of_card(card_with(radial), ["dce_early"])["dce_early"]["radial"]["factor"] == [2.0, 1.0]
    radial["targets"]["dce_early"]["radial"] = {"nodes": [0.4, 1.2], "factor": [2.0, -1.0]}
    with pytest.raises(ModelFileError, match="radial"):
        error_models_of_card(card_with(radial), ["dce_early"])
    assert set(error_models_of_card(card_with(good_block()), ["dce_early", "dce_late"])) == {"dce_early", "dce_late"}
    bad = good_block()
    bad["targets"]["dce_late"] = {"nodes": [0.3, 0.1], "mean_abs_error": [0.01, 0.02]}  # not increasing
    with pytest.raises(ModelFileError, match="dce_late"):
        error_models_of_card(card_with(bad), ["dce_early", "dce_late"])
    missing = good_block()
    del missing["targets"]["dce_late"]
    with pytest.raises(ModelFileError, match="malformed"):
        error_models_of_card(card_with(missing), ["dce_early", "dce_late"])
    future = dict(good_block(), version=ERROR_MODEL_VERSION + 1)
    with pytest.raises(ModelFileError, match="version"):
        error_models_of_card(card_with(future), ["dce_early"])


def with_error_model(model: Path, block: dict) -> Path:
    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["error_model"] = block
    card_path.write_text(json.dumps(card), encoding="utf-8")
    return model


def test_a_model_with_an_error_model_writes_expected_error_maps(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.pipeline import synthesize_to_folder

    model = with_error_model(save_random_model(tmp_path / "m"), good_block())
    assert load_model(model).card["error_model"]["version"] == ERROR_MODEL_VERSION
    inputs = {m: str(CASE / f"{m}.nii.gz") for m in ("t2w", "pd", "adc", "t1pre")}
    out = tmp_path / "out"
    output = synthesize_to_folder(inputs, out, model_path=str(model), steps=2, register=False)
    for short in ("early", "late"):
        path = out / f"expected_error_{short}.nii.gz"
        assert path.is_file()
        values = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        synthetic = sitk.ReadImage(str(out / f"synthetic_{short}.nii.gz"))
        assert values.shape == sitk.GetArrayFromImage(synthetic).shape
        assert values.min() >= 0 and values.max() > values.min()  # edges predict more error than flat regions
        assert set(output.expected_error) == {"early", "late"}


def test_a_corrupt_error_model_fails_at_load_time(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model

    bad = good_block()
    bad["targets"]["dce_early"]["mean_abs_error"] = [0.01, float("nan"), 0.05]
    model = with_error_model(save_random_model(tmp_path / "m"), bad)
    with pytest.raises(ModelFileError, match="error_model"):
        load_model(model)


def test_expected_error_calibration():
    rng = np.random.default_rng(1)
    expected = rng.uniform(0.01, 0.2, 5000)
    error = expected * rng.choice([-1.0, 1.0], expected.size)  # |error| equals the expected error exactly
    perfect = expected_error_calibration(expected, error)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["ratio"] == pytest.approx(1.0)
    assert all(math.isclose(c["expected_mean"], c["abs_error_mean"], rel_tol=1e-9) for c in perfect["curve"])
    twice = expected_error_calibration(expected, 2 * error)
    assert twice["ratio"] == pytest.approx(2.0)  # the map claims half the error there is
    unrelated = expected_error_calibration(expected, rng.normal(0, 0.1, expected.size))
    assert abs(unrelated["spearman"]) < 0.1
    assert expected_error_calibration(np.full(100, 0.1), error[:100])["spearman"] is None


def level_block(factors=(0.5, 1.5)):
    block = good_block()
    level = {"feature": LEVEL_FEATURE, "nodes": [0.376, 0.472], "factor": list(factors)}
    block["targets"] = {t: dict(table, t1pre_level_factor=level) for t, table in block["targets"].items()}
    return block


def test_the_t1pre_level_factor_scales_each_exam_by_its_protocol():
    volume = np.zeros((2, 32, 32), np.float32)
    volume[:, 8:24, 8:24] = 0.5  # edges, so the estimate varies
    table = level_block()["targets"]["dce_early"]
    plain = expected_error(volume, good_block()["targets"]["dce_early"])
    assert np.allclose(expected_error(volume, table), plain)  # level unknown: as without the factor
    assert np.allclose(expected_error(volume, table, t1pre_level=0.2), 0.5 * plain)   # bright fat: below the gap
    assert np.allclose(expected_error(volume, table, t1pre_level=0.9), 1.5 * plain)   # fat suppressed: above it
    assert np.allclose(expected_error(volume, table, t1pre_level=0.424), 1.0 * plain, atol=1e-6)  # mid-gap
    assert level_factor(table, float("nan")) == 1.0


def test_a_malformed_t1pre_level_factor_is_refused():
    assert error_models_of_card(card_with(level_block()), ["dce_early"])["dce_early"]["t1pre_level_factor"]
    for bad in ({"feature": "something else", "nodes": [0.3, 0.5], "factor": [0.5, 1.5]},
                {"feature": LEVEL_FEATURE, "nodes": [0.5, 0.3], "factor": [0.5, 1.5]},
                {"feature": LEVEL_FEATURE, "nodes": [0.3, 0.5], "factor": [0.0, 1.5]}):
        block = good_block()
        block["targets"]["dce_early"] = dict(block["targets"]["dce_early"], t1pre_level_factor=bad)
        with pytest.raises(ModelFileError, match="t1pre_level_factor"):
            error_models_of_card(card_with(block), ["dce_early"])


def test_synthesis_applies_the_factor_of_the_exams_t1pre_level(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.t1pre_level import gland_level

    plain = load_model(with_error_model(save_random_model(tmp_path / "plain"), good_block()))
    scaled = load_model(with_error_model(save_random_model(tmp_path / "scaled"), level_block((0.5, 1.5))))
    rng = np.random.default_rng(0)
    conditions = rng.uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    t1pre = list(plain.card["conditions"]).index("t1pre")
    conditions[t1pre] = -0.9  # a dark T1-pre ...
    conditions[t1pre, :, 12:20, 12:20] = 0.9  # ... whose central region is bright: a high gland level
    level = gland_level(conditions[t1pre])
    a = synthesize_volume(plain, conditions, steps=2, seed=0, device="cpu")
    b = synthesize_volume(scaled, conditions, steps=2, seed=0, device="cpu")
    assert np.array_equal(a.mean, b.mean)  # the synthesis itself is untouched
    factor = float(np.interp(level, [0.376, 0.472], [0.5, 1.5]))
    assert np.allclose(b.expected_error, factor * a.expected_error, rtol=1e-5, atol=1e-7)


def enhancement_block(nodes=(0.05, 0.5), factors=(0.5, 3.0)):
    block = good_block()
    factor = {"feature": ENHANCEMENT_FEATURE, "nodes": list(nodes), "factor": list(factors)}
    block["targets"] = {t: dict(table, enhancement_factor=factor) for t, table in block["targets"].items()}
    return block


def test_the_enhancement_factor_fit_recovers_how_the_error_grows_with_the_drawn_enhancement():
    rng = np.random.default_rng(3)
    estimate = rng.uniform(0.01, 0.05, 40000)  # an estimate that knows nothing of the enhancement
    drawn = rng.gamma(2.0, 0.1, estimate.size)
    error = estimate * (0.5 + 4.0 * drawn) * rng.uniform(0.5, 1.5, estimate.size)  # mean factor 0.5 + 4 d
    table = fit_enhancement_factor([estimate[:20000], estimate[20000:]], [error[:20000], error[20000:]],
                                   [drawn[:20000], drawn[20000:]], bins=8)
    assert table["feature"] == ENHANCEMENT_FEATURE and len(table["nodes"]) == 8
    for node, factor in zip(table["nodes"], table["factor"]):
        assert factor == pytest.approx(0.5 + 4.0 * node, rel=0.1)
    corrected = estimate * np.interp(drawn, table["nodes"], table["factor"])
    assert spearman(corrected, error) > spearman(estimate, error) + 0.15
    assert np.mean(error) / np.mean(corrected) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError):
        fit_enhancement_factor([estimate], [error[:10]], [drawn], bins=8)
    with pytest.raises(ValueError):  # one value only: no two bins
        fit_enhancement_factor([estimate], [error], [np.zeros_like(drawn)], bins=8)


def test_the_enhancement_factor_scales_each_voxel_by_the_enhancement_drawn_there():
    volume = np.zeros((2, 32, 32), np.float32)
    volume[:, 8:24, 8:24] = 0.5
    zero = np.zeros_like(volume)
    zero[:, :, 16:] = 0.5  # the right half draws no enhancement, the left half's square draws 0.5
    table = enhancement_block()["targets"]["dce_early"]
    plain = expected_error(volume, good_block()["targets"]["dce_early"])
    scaled = expected_error(volume, table, zero_enhancement=zero)
    drawn = np.abs(volume - zero)
    np.testing.assert_allclose(scaled, plain * np.interp(drawn, [0.05, 0.5], [0.5, 3.0]), rtol=1e-5)
    assert np.allclose(scaled[drawn == 0.5], 3.0 * plain[drawn == 0.5])
    with pytest.raises(ValueError, match="zero_enhancement"):  # fitted with the factor: it cannot be left out
        expected_error(volume, table)
    with pytest.raises(ValueError, match="zero_enhancement"):
        expected_error(volume, table, zero_enhancement=zero[:1])


def test_a_malformed_enhancement_factor_is_refused():
    card = dict(card_with(enhancement_block()), conditions=["t2w", "pd", "adc", "t1pre"])
    assert error_models_of_card(card, ["dce_early"])["dce_early"]["enhancement_factor"]["factor"] == [0.5, 3.0]
    with pytest.raises(ModelFileError, match="T1-pre"):  # nothing to measure the drawn enhancement against
        error_models_of_card(dict(card, conditions=["t2w", "pd", "adc"]), ["dce_early"])
    for bad in ({"feature": LEVEL_FEATURE, "nodes": [0.05, 0.5], "factor": [0.5, 3.0]},
                {"feature": ENHANCEMENT_FEATURE, "nodes": [0.5, 0.05], "factor": [0.5, 3.0]},
                {"feature": ENHANCEMENT_FEATURE, "nodes": [0.05, 0.5], "factor": [float("nan"), 3.0]}):
        block = good_block()
        block["targets"]["dce_early"] = dict(block["targets"]["dce_early"], enhancement_factor=bad)
        with pytest.raises(ModelFileError, match="enhancement_factor"):
            error_models_of_card(dict(card, error_model=block), ["dce_early"])


def test_synthesis_applies_the_enhancement_factor_to_what_it_draws(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume, voxel_corrector_inputs

    plain = load_model(with_error_model(save_random_model(tmp_path / "plain"), good_block()))
    scaled = load_model(with_error_model(save_random_model(tmp_path / "scaled"), enhancement_block()))
    conditions = np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    a = synthesize_volume(plain, conditions, steps=2, seed=0, device="cpu")
    b = synthesize_volume(scaled, conditions, steps=2, seed=0, device="cpu")
    assert np.array_equal(a.mean, b.mean)  # the synthesis itself is untouched
    _, zero = voxel_corrector_inputs(scaled.card, conditions)
    factor = np.interp(np.abs(b.mean - zero[None]), [0.05, 0.5], [0.5, 3.0])
    assert np.allclose(b.expected_error, factor * a.expected_error, rtol=1e-5, atol=1e-7)
    assert not np.allclose(b.expected_error, a.expected_error)


def test_the_error_lookup_never_predicts_a_smaller_error_for_a_stronger_edge():
    """fit_error_model's contract: 'values are made non-decreasing in the feature (a running maximum), so a stronger
    edge never predicts a smaller error'. Errors here are 1.0 on the weak-edge half and 0.2 on the strong-edge
    half: the lookup must stay at 1.0 (the running maximum) instead of dropping to 0.2."""
    from DCEDiffLib.diffusion.error_map import fit_error_model

    feature = np.linspace(0.0, 1.0, 4000)
    error = np.where(feature < 0.5, 1.0, 0.2)
    table = fit_error_model([feature], [error], bins=10)
    values = np.asarray(table["mean_abs_error"])
    assert np.all(np.diff(values) >= 0)
    assert values[-1] == pytest.approx(1.0)
    assert np.interp(0.95, table["nodes"], values) >= np.interp(0.05, table["nodes"], values)
