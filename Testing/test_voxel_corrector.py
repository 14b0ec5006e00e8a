"""The voxel corrector (DCEDiffLib/diffusion/voxel_corrector.py): trees evaluated exactly, features, region, files."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from DCEDiffLib import ood
from DCEDiffLib.diffusion import voxel_corrector as vc
from DCEDiffLib.diffusion.model_files import load_model, sha256_of
from DCEDiffLib.errors import ModelFileError
from DCEDiffLib.model_registry import shipped_model_path


def _stump(threshold: float, low: float, high: float, missing_left: bool) -> vc.TreeEnsemble:
    """One tree: feature 1 ≤ threshold → low, else high; NaN goes left when ``missing_left``."""
    return vc.TreeEnsemble(feature=np.array([1, 0, 0]), threshold=np.array([threshold, 0.0, 0.0]),
                           left=np.array([1, 0, 0]), right=np.array([2, 0, 0]),
                           is_leaf=np.array([False, True, True]), missing_left=np.array([missing_left, False, False]),
                           value=np.array([0.0, low, high]), roots=np.array([0]), baseline=0.5)


def test_a_hand_built_tree_gives_its_leaves():
    tree = _stump(0.0, -1.0, 2.0, missing_left=True)
    x = np.array([[9.0, -0.5], [9.0, 0.0], [9.0, 0.5], [9.0, np.nan]])
    assert tree.predict(x).tolist() == [-0.5, -0.5, 2.5, -0.5]
    assert _stump(0.0, -1.0, 2.0, missing_left=False).predict(x[3:]).tolist() == [2.5]


def test_flattened_trees_predict_exactly_as_scikit_learn_with_missing_values():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5))
    y = np.where(x[:, 0] > 0, 1.0, -1.0) + 0.5 * x[:, 1] ** 2 + 0.1 * rng.normal(size=3000)
    x[rng.random(3000) < 0.2, 2] = np.nan  # a feature left out for a fifth of the rows, as PD is
    y[np.isnan(x[:, 2])] += 0.7
    regressor = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=15, random_state=0).fit(x, y)
    ensemble = vc.ensemble_from_sklearn(regressor)
    test = rng.normal(size=(500, 5))
    test[::3, 2] = np.nan
    np.testing.assert_allclose(ensemble.predict(test), regressor.predict(test), rtol=0, atol=1e-9)
    restored = vc.TreeEnsemble.from_tensors(ensemble.tensors("t"), "t", ensemble.baseline)
    np.testing.assert_allclose(restored.predict(test), regressor.predict(test), rtol=0, atol=1e-9)


def test_tree_arrays_that_point_outside_are_refused():
    tensors = _stump(0.0, -1.0, 2.0, True).tensors("t")
    tensors["t.left"] = np.array([7, 0, 0])
    with pytest.raises(ValueError, match="left"):
        vc.TreeEnsemble.from_tensors(tensors, "t", 0.0)
    tensors["t.left"] = np.array([0, 0, 0])  # the root's left child is the root: a path that never ends
    with pytest.raises(ValueError, match="cycle"):
        vc.TreeEnsemble.from_tensors(tensors, "t", 0.0)


def test_many_voxels_and_trees_predict_as_one_voxel_at_a_time():
    """The chunked traversal (more voxels than one chunk, trees of different depths) gives each voxel's own sum."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(3)
    x = rng.normal(size=(vc.PREDICT_CHUNK * 2 + 37, 4))
    y = np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=len(x))
    ensemble = vc.ensemble_from_sklearn(HistGradientBoostingRegressor(max_iter=12, random_state=0).fit(x, y))
    together = ensemble.predict(x)
    one_by_one = np.array([ensemble.predict(row[None])[0] for row in x[::97]])
    np.testing.assert_allclose(together[::97], one_by_one, rtol=0, atol=1e-12)


def test_chunks_walked_in_threads_give_the_same_bits_and_pass_a_cycle_on(monkeypatch):
    """Several threads walk the chunks at once (numpy releases the GIL): the result is bit-identical to one thread,
    and a path that never ends still raises, whichever thread meets it."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(5)
    x = rng.normal(size=(vc.PREDICT_CHUNK * 5 + 11, 4))
    x[rng.random(len(x)) < 0.1, 3] = np.nan
    y = np.cos(2 * x[:, 0]) + x[:, 1] - np.nan_to_num(x[:, 3]) + 0.1 * rng.normal(size=len(x))
    ensemble = vc.ensemble_from_sklearn(HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(x, y))
    monkeypatch.setattr(vc, "PREDICT_THREADS", 1)
    one = ensemble.predict(x)
    monkeypatch.setattr(vc, "PREDICT_THREADS", 3)
    assert np.array_equal(ensemble.predict(x), one)
    looping = _stump(0.0, -1.0, 2.0, True)  # built directly, past the load-time check: the root is its own child
    looping.left[0] = 0
    with pytest.raises(ValueError, match="cycle"):
        looping.predict(np.zeros((vc.PREDICT_CHUNK * 3, 2)))


def _volumes(seed=0, k=8, size=48):
    rng = np.random.default_rng(seed)
    conditions = rng.uniform(-1, 1, size=(4, k, size, size)).astype(np.float32)
    enhancement = rng.uniform(0, 0.3, size=(2, k, size, size)).astype(np.float32)
    return conditions, enhancement


def test_features_have_one_column_per_name_and_a_left_out_pd_is_nan():
    conditions, enhancement = _volumes()
    radius = ood.gland_radius(conditions.shape[1:])
    region = radius <= vc.REGION_RADIUS
    features = vc.voxel_features(conditions, enhancement, radius, region)
    names = vc.feature_names()
    assert features.shape == (int(region.sum()), len(names))
    assert np.isfinite(features).all()
    conditions[1] = -1.0  # PD left out: synthesis gives a constant channel
    features = vc.voxel_features(conditions, enhancement, radius, region)
    pd_columns = [i for i, n in enumerate(names) if n.startswith("pd_")]
    assert np.isnan(features[:, pd_columns]).all()
    others = [i for i in range(len(names)) if i not in pd_columns]
    assert np.isfinite(features[:, others]).all()


def test_features_follow_a_local_lesion_like_dip():
    conditions, enhancement = _volumes()
    conditions[2] = 0.0
    k, h, w = conditions.shape[1:]
    conditions[2, :, h // 2 - 2:h // 2 + 3, w // 2 - 2:w // 2 + 3] = -0.8  # a dark ADC spot at the centre
    radius = ood.gland_radius(conditions.shape[1:])
    region = np.zeros_like(radius, dtype=bool)
    region[k // 2, h // 2, w // 2] = True
    region[k // 2, 2, 2] = True  # one voxel at the spot's centre, one far away (region order: raster)
    names = vc.feature_names()
    features = vc.voxel_features(conditions, enhancement, radius, region)
    contrast = names.index("adc_local_contrast")
    assert features[1, contrast] < -0.3 < features[0, contrast] + 0.3
    assert features[1, names.index("adc_min5_vs_gland")] == pytest.approx(-0.8)


def test_correction_stays_in_its_region_and_leaves_inputs_alone():
    conditions, enhancement = _volumes(k=16, size=96)
    synthetic = np.clip(enhancement - 0.5, -1, 1)
    zero = np.full(conditions.shape[1:], -0.5, np.float32)
    corrector = vc.VoxelCorrector({"dce_early": _stump(0.0, 0.1, 0.1, True), "dce_late": _stump(0.0, -0.2, -0.2, True)},
                                  ("dce_early", "dce_late"))
    before = (conditions.copy(), synthetic.copy())
    out = corrector.correct(synthetic, conditions, zero)
    np.testing.assert_array_equal(conditions, before[0])
    np.testing.assert_array_equal(synthetic, before[1])
    radius = ood.gland_radius(conditions.shape[1:])
    inside, outside = radius <= vc.REGION_RADIUS - vc.TAPER, radius >= vc.REGION_RADIUS
    np.testing.assert_allclose((out - synthetic)[0][inside], 0.6, atol=1e-6)  # baseline 0.5 + leaf 0.1
    np.testing.assert_allclose((out - synthetic)[1][inside], 0.3, atol=1e-6)
    assert (out == synthetic)[:, outside].all()
    rim = (radius > vc.REGION_RADIUS - vc.TAPER) & (radius < vc.REGION_RADIUS)
    assert 0 < float(np.abs(out - synthetic)[0][rim].min()) < 0.6


def _card_with_corrector(tmp_path: Path) -> Path:
    """A copy of the shipped card and weights with a two-stump corrector file beside it (real files on disk)."""
    from safetensors.numpy import save_file

    source = Path(shipped_model_path()).with_suffix("")
    for suffix in (".json", ".safetensors"):
        shutil.copyfile(source.with_suffix(suffix), tmp_path / f"m{suffix}")
    tensors = {}
    for target, tree in (("dce_early", _stump(0.0, 0.1, 0.2, True)), ("dce_late", _stump(0.0, -0.1, 0.0, False))):
        tensors.update(tree.tensors(target))
    save_file(tensors, str(tmp_path / "m.corrector.safetensors"))
    card = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    card["error_model"].pop("learned", None)  # fitted without a corrector: a card with one refuses it
    card["voxel_corrector"] = {"version": vc.CORRECTOR_VERSION, "file": "m.corrector.safetensors",
                               "sha256": sha256_of(tmp_path / "m.corrector.safetensors"),
                               "baseline": {"dce_early": 0.0, "dce_late": 0.0}, "features": vc.feature_names()}
    (tmp_path / "m.json").write_text(json.dumps(card), encoding="utf-8")
    return tmp_path / "m"


def test_a_card_loads_its_corrector_and_refuses_an_altered_or_missing_file(tmp_path):
    stem = _card_with_corrector(tmp_path)
    model = load_model(stem)
    assert isinstance(model.corrector, vc.VoxelCorrector)
    card = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    path = tmp_path / card["voxel_corrector"]["file"]
    assert sha256_of(path) == card["voxel_corrector"]["sha256"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="voxel corrector"):
        load_model(stem)
    path.unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_model(stem)


def test_a_card_whose_feature_list_differs_is_refused(tmp_path):
    stem = _card_with_corrector(tmp_path)
    card = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    card["voxel_corrector"]["features"] = card["voxel_corrector"]["features"][:-1]
    stem.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelFileError, match="feature"):
        load_model(stem)


def test_synthesis_applies_the_corrector_only_around_the_prostate(tmp_path):
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    model = load_model(_card_with_corrector(tmp_path))
    rng = np.random.default_rng(1)
    conditions = rng.uniform(-1, 1, size=(4, 4, 64, 64)).astype(np.float32)
    kept = conditions.copy()
    with_corrector = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu")
    without = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu", voxel_corrector=False)
    np.testing.assert_array_equal(conditions, kept)
    assert "voxel corrector applied around the prostate" in with_corrector.notes
    radius = ood.gland_radius(conditions.shape[1:])
    changed = np.abs(with_corrector.mean - without.mean) > 0
    assert changed[:, radius <= vc.REGION_RADIUS - vc.TAPER].mean() > 0.5
    assert not changed[:, radius >= vc.REGION_RADIUS].any()


def test_the_fitting_script_writes_a_card_that_loads_and_changes_the_synthesis(tmp_path):
    """scripts/fit_voxel_corrector.py end to end on the shipped sample case (a few trees; real preprocessing), for
    the shipped card with narrow random networks (the script's plumbing needs a whole card, not trained weights)."""
    import importlib.util

    from random_model import save_narrow_copy_of_the_shipped_card

    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR

    spec = importlib.util.spec_from_file_location("fit_voxel_corrector", Path(__file__).resolve().parents[1]
                                                  / "scripts" / "fit_voxel_corrector.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    samples = tmp_path / "samples.npz"
    narrow = save_narrow_copy_of_the_shipped_card(tmp_path)
    args = [str(narrow), "--data", str(SAMPLE_CASE_DIR.parent), "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "fitted"), "--iterations", "3", "--pd-dropout", "0", "--samples-file", str(samples)]
    assert script.main(args) == 0
    assert samples.is_file()
    model = load_model(tmp_path / "fitted")
    assert isinstance(model.corrector, vc.VoxelCorrector)
    assert len(model.corrector.ensembles["dce_early"].roots) == 3
    from DCEDiffLib.diffusion.synthesis import synthesize_volume

    conditions = np.random.default_rng(0).uniform(-1, 1, size=(4, 4, 64, 64)).astype(np.float32)
    corrected = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu")
    plain = synthesize_volume(model, conditions, samples=1, seed=0, device="cpu", voxel_corrector=False)
    assert np.abs(corrected.mean - plain.mean).max() > 1e-4  # the fitted trees change the synthesis
    card = json.loads((tmp_path / "fitted.json").read_text(encoding="utf-8"))
    assert card["voxel_corrector"]["fitted_on"]["cases"] == 1
    narrow_card = json.loads(narrow.with_suffix(".json").read_text(encoding="utf-8"))
    assert card["weights_sha256"] == narrow_card["weights_sha256"]  # the weights themselves are not touched
