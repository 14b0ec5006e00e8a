"""The mean network's extra inputs and the voxel corrector at their documented rule: the absolute-ADC channel's card
fields, inserting zero input channels, the corrected region and the corrector's features (session-56 mutation audit,
round 13). Each test names the mutation it kills:

- test_a_residual_card_reads_the_channel_from_its_mean_network: absolute_adc.reads_absolute_adc reading a residual
  card's own field instead of its mean network's.
- test_a_false_absolute_adc_field_is_allowed_on_any_card: absolute_adc.check_card_field refusing ``false`` on a
  card that is not a regression card.
- test_inserting_channels_outside_the_input_is_refused: network_growth.insert_zero_input_channels without its
  position bound.
- test_the_correction_fades_over_the_outer_quarter_radius: voxel_corrector.region_weight fading over 0.5 radii.
- test_features_are_against_the_median_of_the_central_gland: voxel_features taking the median over the whole
  corrected region (radius ≤ 2) instead of the central gland (radius ≤ 1).
- test_smoothing_keeps_a_constant_and_the_gradient_of_a_ramp_is_its_slope: _gaussian without its normalised kernel;
  _gradient's row difference not halved.
"""

import numpy as np
import pytest
import torch


# ---------------------------------------------------------------- absolute_adc.py
def test_a_residual_card_reads_the_channel_from_its_mean_network():
    """reads_absolute_adc: "a regression card, or a residual card's mean network" — the residual card's own top-level
    field is not where its mean network says it (check_card_field: a residual card keeps it in mean_network)."""
    from DCEDiffLib.diffusion.absolute_adc import reads_absolute_adc

    assert reads_absolute_adc({"objective": "residual", "mean_network": {"absolute_adc": True}})
    assert not reads_absolute_adc({"objective": "residual", "absolute_adc": True, "mean_network": {}})
    assert reads_absolute_adc({"objective": "regression", "absolute_adc": True})
    assert not reads_absolute_adc({"objective": "diffusion", "absolute_adc": True})


def test_a_false_absolute_adc_field_is_allowed_on_any_card():
    """check_card_field: the number of extra channels; ``true`` belongs to a regression network only, ``false`` (no
    channel) is refused nowhere; a non-boolean is refused everywhere."""
    from DCEDiffLib.diffusion.absolute_adc import check_card_field

    assert check_card_field(True, "regression") == 1
    for objective in ("regression", "residual", "diffusion"):
        assert check_card_field(False, objective) == 0
    with pytest.raises(ValueError, match="belongs to a regression network"):
        check_card_field(True, "residual")
    with pytest.raises(ValueError, match="expected true or false"):
        check_card_field(1, "regression")


# ---------------------------------------------------------------- network_growth.py
def test_inserting_channels_outside_the_input_is_refused():
    """insert_zero_input_channels: channels are inserted "before input channel position", 0 … the source's input
    channels (the end); a position outside that is a ValueError naming the channels, not a tensor shape error."""
    from DCEDiffLib.diffusion.network_growth import insert_zero_input_channels
    from DCEDiffLib.diffusion.presets import build_network, network_config

    narrow = build_network(network_config("tiny", in_channels=6, out_channels=2))
    wide = build_network(network_config("tiny", in_channels=7, out_channels=2))
    for position in (-1, 7):
        with pytest.raises(ValueError, match="inserted at"):
            insert_zero_input_channels(narrow, wide, position=position)
    insert_zero_input_channels(narrow, wide, position=6)  # after the last channel
    from DCEDiffLib.diffusion.slice_context import first_convolution

    assert torch.equal(first_convolution(wide).weight[:, :6], first_convolution(narrow).weight)
    assert not first_convolution(wide).weight[:, 6].any()


# ---------------------------------------------------------------- voxel_corrector.py
def test_the_correction_fades_over_the_outer_quarter_radius():
    """region_weight: "1 inside the corrected region, fading linearly to 0 over its outer TAPER radii" — 1 up to
    REGION_RADIUS − TAPER = 1.75, 0 from 2 on, halfway at 1.875."""
    from DCEDiffLib.diffusion.voxel_corrector import REGION_RADIUS, TAPER, region_weight

    assert (REGION_RADIUS, TAPER) == (2.0, 0.25)
    radius = np.array([0.0, 1.0, 1.75, 1.875, 2.0, 3.0])
    np.testing.assert_allclose(region_weight(radius), [1.0, 1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-6)


def _features(conditions, radius):
    from DCEDiffLib.diffusion.voxel_corrector import feature_names, voxel_features

    enhancement = np.zeros((2,) + radius.shape, np.float32)
    features = voxel_features(conditions, enhancement, radius, np.ones(radius.shape, bool))
    return {name: features[:, i].reshape(radius.shape) for i, name in enumerate(feature_names())}


def test_features_are_against_the_median_of_the_central_gland():
    """voxel_features: each channel "against the central gland's median" — the gland being radius ≤ 1 of
    ``ood.gland_radius`` (its central ellipsoid), not the whole corrected region. Left half: gland (radius 0.5),
    T2W 0.2; right half: outside it (radius 1.5), T2W 0.8 and more voxels."""
    radius = np.full((2, 12, 12), 1.5, np.float32)
    radius[:, :, :5] = 0.5
    conditions = np.zeros((4, 2, 12, 12), np.float32)
    conditions[0] = np.where(radius <= 1.0, 0.2, 0.8)
    columns = _features(conditions, radius)
    np.testing.assert_allclose(columns["t2w_vs_gland"][radius <= 1.0], 0.0, atol=1e-6)
    np.testing.assert_allclose(columns["t2w_vs_gland"][radius > 1.0], 0.6, atol=1e-6)
    np.testing.assert_allclose(columns["t2w_value"][radius > 1.0], 0.8, atol=1e-6)


def test_smoothing_keeps_a_constant_and_the_gradient_of_a_ramp_is_its_slope():
    """The smoothed features are Gaussian averages (a constant channel stays that constant, so against its own
    median it is 0 at every scale, local contrast and extremes included); the gradient is the magnitude of the
    central difference (f(x+1) − f(x−1)) / 2 per voxel: a ramp of slope 0.01 per row or per column has gradient 0.01
    away from the edges."""
    from DCEDiffLib.diffusion.voxel_corrector import SCALES_PX, WINDOW_PX

    radius = np.full((1, 32, 32), 0.5, np.float32)
    conditions = np.zeros((4, 1, 32, 32), np.float32)
    conditions[0] = 0.3                                       # t2w: constant
    conditions[1] = (np.arange(32, dtype=np.float32) * 0.01)[None, :, None]  # pd: a ramp along the rows
    conditions[2] = (np.arange(32, dtype=np.float32) * 0.01)[None, None, :]  # adc: a ramp along the columns
    columns = _features(conditions, radius)
    for scale in SCALES_PX:
        np.testing.assert_allclose(columns[f"t2w_smooth{scale:g}_vs_gland"], 0.0, atol=1e-6)
    for name in ("local_contrast", f"min{WINDOW_PX}_vs_gland", f"max{WINDOW_PX}_vs_gland", "gradient"):
        np.testing.assert_allclose(columns[f"t2w_{name}"], 0.0, atol=1e-6)
    inner = (slice(None), slice(8, 24), slice(8, 24))
    np.testing.assert_allclose(columns["pd_gradient"][inner], 0.01, rtol=1e-3)
    np.testing.assert_allclose(columns["adc_gradient"][inner], 0.01, rtol=1e-3)
