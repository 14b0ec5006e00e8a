"""The output rescale for a T1-pre lower on its scale than any training exam (DCEDiffLib/t1pre_level.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from DCEDiffLib.diffusion.synthesis import SynthesisResult
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR, shipped_model_path
from DCEDiffLib.ood import gland_region
from DCEDiffLib.t1pre_level import FLOOR, enhancement_factor, gland_level, rescale_low_t1pre, training_minimum
from random_model import save_random_model

NAMES = ["t2w", "pd", "adc", "t1pre"]


def _card(minimum):
    return {"normalization": {"target_range_factor": 3.0},
            "input_statistics": {"features": {"t1pre.gland_level": {"kind": "level_lower", "minimum": minimum}}}}


def _volume(level, shape=(4, 40, 40)):
    """Conditions whose T1-pre's central gland region sits at ``level`` (0–1) and whose outside is bright."""
    t1pre = np.full(shape, 0.8, np.float32)
    t1pre[gland_region(shape)] = 2 * level - 1
    conditions = np.zeros((4,) + shape, np.float32)
    conditions[3] = t1pre
    return conditions


def _result(shape=(4, 40, 40)):
    rng = np.random.default_rng(0)
    return SynthesisResult(mean=rng.uniform(-0.9, 0.2, (2,) + shape).astype(np.float32),
                           std=np.full((2,) + shape, 0.1, np.float32), nfe=1, seconds=0.0, device="cpu",
                           precision="fp32", expected_error=np.full((2,) + shape, 0.05, np.float32))


def test_a_low_gland_scales_the_enhancement_around_the_t1pre_and_keeps_its_pattern():
    conditions = _volume(0.08)
    assert gland_level(conditions[3]) == pytest.approx(0.08, abs=1e-6)
    result = _result()
    before = result.mean.copy()
    done = rescale_low_t1pre(result, conditions, NAMES, _card(0.16))
    assert done["factor"] == pytest.approx(0.5) and done["gland_level"] == pytest.approx(0.08)
    assert "scaled by 0.50" in done["note"]
    zero = (conditions[3] + 1) / 3.0 - 1  # the T1-pre on the targets' scale
    assert np.allclose(result.mean - zero, 0.5 * (before - zero), atol=1e-6)
    assert np.allclose(result.std, 0.05) and np.allclose(result.expected_error, 0.025)
    # one factor for the whole volume: the enhancement's correlation with anything stays exactly what it was
    a, b = (before - zero).ravel(), (result.mean - zero).ravel()
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(1.0)


def test_nothing_changes_at_or_above_the_minimum_or_without_the_feature():
    for conditions, card in ((_volume(0.16), _card(0.16)), (_volume(0.5), _card(0.16)), (_volume(0.05), {}),
                             (_volume(0.05), {"input_statistics": {"features": {}}})):
        result = _result()
        before = result.mean.copy()
        assert rescale_low_t1pre(result, conditions, NAMES, card) is None
        assert np.array_equal(result.mean, before)
    assert rescale_low_t1pre(_result(), _volume(0.05)[:3], NAMES[:3], _card(0.16)) is None  # no T1-pre
    assert enhancement_factor(_card(0.5), 0.01) == FLOOR and enhancement_factor(_card(0.5), float("nan")) is None


def test_the_shipped_card_records_the_minimum_the_rescale_uses():
    card = json.loads(shipped_model_path().with_suffix(".json").read_text(encoding="utf-8"))
    assert 0.1 < training_minimum(card) < 0.2


@pytest.mark.skipif(not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
def test_synthesis_applies_it_says_so_and_keeps_the_inputs(tmp_path):
    """Through ``synthesize_case`` on the sample case with a small random model: a card whose recorded minimum lies
    above the exam's gland level makes the synthetic enhancement that factor of the unscaled one."""
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.pipeline import condition_array, synthesize_case
    from DCEDiffLib.target_scale import target_norm_params

    plain = save_random_model(tmp_path)
    shipped = json.loads(shipped_model_path().with_suffix(".json").read_text(encoding="utf-8"))
    statistics = json.loads(json.dumps(shipped["input_statistics"]))
    statistics["features"]["t1pre.gland_level"]["minimum"] = 2.0  # above any exam (levels are 0–1): it must fire
    low = tmp_path / "low.safetensors"
    low.write_bytes(plain.read_bytes())
    card = json.loads(plain.with_suffix(".json").read_text(encoding="utf-8"))
    low.with_suffix(".json").write_text(json.dumps(dict(card, input_statistics=statistics)), encoding="utf-8")
    inputs = {m: str(SAMPLE_CASE_DIR / f"{m}.nii.gz") for m in NAMES}
    outputs = [synthesize_case(inputs, model_path=str(path), steps=2, seed=0, device="cpu", precision="fp32",
                               register=False) for path in (plain, low)]
    assert "enhancement_rescaled" not in outputs[0].provenance
    done = outputs[1].provenance["enhancement_rescaled"]
    level = gland_level(condition_array(outputs[1].case, ["t1pre"])[0])
    assert done["factor"] == pytest.approx(max(level / 2.0, FLOOR), abs=1e-4) and done["factor"] < 0.6
    case = outputs[1].case
    zero = denormalize((np.clip(condition_array(case, ["t1pre"])[0], -1, 1) + 1) / 3.0 - 1,
                       target_norm_params(case.norm["t1pre"]))
    import SimpleITK as sitk

    for phase in ("early", "late"):
        unscaled, scaled = (sitk.GetArrayFromImage(o.synthetic[phase]) for o in outputs)
        assert np.allclose(scaled - zero, done["factor"] * (unscaled - zero), atol=1e-2 * np.abs(unscaled).max())
    assert Path(inputs["t1pre"]).is_file()


@pytest.mark.skipif(not (SAMPLE_CASE_DIR / "t2w.nii.gz").is_file(), reason="shipped phantom case missing")
def test_evaluation_applies_it_as_synthesis_does(tmp_path):
    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.evaluation_runner import synthesize_arrays
    from DCEDiffLib.training.case_data import load_case

    plain = save_random_model(tmp_path)
    low = tmp_path / "low.safetensors"
    low.write_bytes(plain.read_bytes())
    card = json.loads(plain.with_suffix(".json").read_text(encoding="utf-8"))
    low.with_suffix(".json").write_text(json.dumps(dict(card, input_statistics=_card(2.0)["input_statistics"])),
                                        encoding="utf-8")
    case = load_case(SAMPLE_CASE_DIR, tmp_path / "cache")
    unscaled, scaled = (synthesize_arrays(load_model(p), case, "dpmpp", 2, 1, 0, "cpu") for p in (plain, low))
    factor = max(gland_level(case.conditions[3]) / 2.0, FLOOR)  # as synthesis: never below the floor
    zero_image = unscaled["early"] - (unscaled["early"] - scaled["early"]) / (1 - factor)
    for phase in ("early", "late"):
        assert not np.allclose(unscaled[phase], scaled[phase])
        assert np.allclose(scaled[phase] - zero_image, factor * (unscaled[phase] - zero_image),
                           atol=1e-2 * np.abs(unscaled[phase]).max())


def test_the_targets_scale_maps_the_t1pre_range_to_its_first_part():
    from DCEDiffLib.normalization import NormParams, normalize
    from DCEDiffLib.target_scale import target_norm_params

    # the targets' range starts at the T1-pre's low and spans factor × its range: the T1-pre's own [low, high]
    # lands on [-1, -1 + 2 / factor] of the targets' scale
    t1pre, factor = NormParams(low=200.0, high=700.0), 3.0
    targets = target_norm_params(t1pre, factor)
    mapped = normalize(np.array([200.0, 700.0, 1700.0]), targets)
    assert np.allclose(mapped, [-1.0, -1.0 + 2.0 / factor, 1.0])


def test_a_level_given_for_the_whole_volume_decides_not_the_slices_at_hand():
    """The benchmark scores a few slices: the factor comes from the whole volume's level when it is given, so a
    high level leaves low slices alone and a low one scales slices whose own level is high."""
    result = _result()
    before = result.mean.copy()
    assert rescale_low_t1pre(result, _volume(0.08), NAMES, _card(0.16), level=0.5) is None
    assert np.array_equal(result.mean, before)
    done = rescale_low_t1pre(result, _volume(0.5), NAMES, _card(0.16), level=0.08)
    assert done["factor"] == pytest.approx(0.5) and done["gland_level"] == pytest.approx(0.08)
