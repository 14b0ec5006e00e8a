"""Targets over the clipped T1-pre (training/clipped_t1pre.py): the excess the network cannot see is taken out of the
training targets, the card says so, and synthesis adds the excess back at every clipped voxel."""

import json

import numpy as np
import pytest

from DCEDiffLib.diffusion.model_files import load_model
from DCEDiffLib.errors import InputError
from DCEDiffLib.intensity_tail import CARD_FIELD, adds_excess_back, clipped_t1pre_excess
from DCEDiffLib.normalization import NormParams
from DCEDiffLib.training.batches import SliceBatches, fixed_slices
from DCEDiffLib.training.case_data import CaseArrays
from DCEDiffLib.training.clipped_t1pre import targets_over_clipped_t1pre

from test_training import make_trainer, tiny_config

REGRESSION = dict(objective="regression", parameterization="enhancement")


def test_the_excess_above_the_range_leaves_the_targets_on_their_scale():
    t1pre = np.array([[0.5, 1.0], [1.6, 2.5]], dtype=np.float32)
    targets = np.zeros((2, 2, 2), dtype=np.float32)
    before = t1pre.copy()
    out = targets_over_clipped_t1pre(t1pre, targets, 3.0)
    assert np.array_equal(t1pre, before) and not targets.any()  # inputs untouched
    # 0.6 and 1.5 above the clip, on a target scale three times the T1-pre's span: 0.2 and 0.5
    assert np.allclose(out[0], [[0.0, 0.0], [-0.2, -0.5]]) and np.allclose(out[1], out[0])


def _case_with_bright_corner(size=32, slices=2) -> CaseArrays:
    """Conditions at 0 except a T1-pre corner at 1.9 (0.9 above the range); targets 0.1 everywhere."""
    cond = np.zeros((4, slices, size, size), dtype=np.float32)
    cond[3, :, :8, :8] = 1.9
    targets = np.full((2, slices, size, size), 0.1, dtype=np.float32)
    norm = {m: NormParams(0.0, 100.0, 0.5, 99.5) for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    return CaseArrays("bright", cond, targets, None, None, norm, {})


def test_batches_and_validation_slices_take_the_excess_out_only_when_asked():
    case = _case_with_bright_corner()
    plain = SliceBatches([case], 2, 32, 0, flip_left_right=False)
    consistent = SliceBatches([case], 2, 32, 0, flip_left_right=False, t1pre_clip_range_factor=3.0)
    cond_a, target_a = plain.batch(0)
    cond_b, target_b = consistent.batch(0)
    assert np.array_equal(cond_a.numpy(), cond_b.numpy()) and float(cond_a.max()) == 1.0  # the network reads 1
    difference = (target_a - target_b).numpy()
    assert np.allclose(difference[:, :, :8, :8], 0.3) and np.allclose(difference[:, :, 8:, :], 0.0)
    assert np.allclose(difference[:, :, :, 8:], 0.0)
    assert np.allclose(target_a.numpy(), 0.1)  # as acquired without the setting
    _, val_plain = fixed_slices([case], 2)
    _, val_consistent = fixed_slices([case], 2, t1pre_clip_range_factor=3.0)
    assert np.allclose((val_plain - val_consistent).numpy()[:, :, :8, :8], 0.3)
    assert np.allclose((val_plain - val_consistent).numpy()[:, :, 8:, :], 0.0)


def test_the_excess_is_added_back_everywhere_for_such_a_model_and_only_after_the_tail_rule_otherwise():
    t1pre = np.array([50.0, 100.0, 130.0], dtype=np.float32)
    params = NormParams(0.0, 100.0, 0.5, 99.5)
    assert clipped_t1pre_excess(t1pre, params, {}) is None
    assert np.allclose(clipped_t1pre_excess(t1pre, params, {"t1pre": "tail"}), [0.0, 0.0, 30.0])
    assert np.allclose(clipped_t1pre_excess(t1pre, params, {}, always=True), [0.0, 0.0, 30.0])
    assert adds_excess_back({CARD_FIELD: True}) and not adds_excess_back({})


def test_the_setting_is_checked_trained_and_written_into_the_card(tmp_path):
    with pytest.raises(InputError, match="t1pre_clip_consistent 'yes'"):
        tiny_config(t1pre_clip_consistent="yes", **REGRESSION)
    with pytest.raises(InputError, match="T1-pre among 'without'"):
        tiny_config(t1pre_clip_consistent=True, without=["t1pre"], **REGRESSION)
    make_trainer(tmp_path, tiny_config(iterations=3, t1pre_clip_consistent=True, **REGRESSION), "consistent").run()
    card = json.loads((tmp_path / "consistent" / "model.json").read_text(encoding="utf-8"))
    assert card[CARD_FIELD] is True and card["training"]["recipe"]["t1pre_clip_consistent"] is True
    assert adds_excess_back(load_model(tmp_path / "consistent" / "model.safetensors").card)
    make_trainer(tmp_path, tiny_config(iterations=3, **REGRESSION), "plain").run()
    plain = json.loads((tmp_path / "plain" / "model.json").read_text(encoding="utf-8"))
    assert CARD_FIELD not in plain and plain["training"]["recipe"]["t1pre_clip_consistent"] is False
    # a residual run around such a mean takes its setting: the residual must not learn back the excess
    residual = make_trainer(tmp_path, tiny_config(iterations=3, objective="residual",
                                                  mean_model=str(tmp_path / "consistent" / "model.safetensors")),
                            "residual")
    assert residual.batches.t1pre_clip_range_factor == 3.0
    residual.run()
    assert adds_excess_back(load_model(tmp_path / "residual" / "model.safetensors").card)
