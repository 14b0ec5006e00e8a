"""The engine's small helpers at their documented rule: where an input comes from, model names, optional extras,
negative command-line values, step counts and the acquired DCE's scale (session-56 mutation audit, round 13). Each
test names the mutation it kills:

- test_the_mark_must_start_the_text: data_source._marked accepting the mark anywhere in the text.
- test_an_old_case_json_counts_only_with_synthetic_true: phantom_case_params taking any truthy "synthetic".
- test_a_folder_is_decided_by_its_first_file_that_reads_as_an_image: _dicom_folder_marked deciding on the first
  file even when it is no image.
- test_inputs_given_as_none_are_left_out: input_sources keeping a modality whose value is None.
- test_only_the_generic_export_names_get_their_run_folder: model_registry.model_name adding the folder to every name.
- test_a_missing_extra_is_named_by_its_distribution_and_said_once: extras, the import name instead of the pip
  distribution; the skip line said at every call instead of once.
- test_a_centre_starting_with_a_negative_fraction_is_joined: cli_argv's negative-number pattern without ``-.5``.
- test_a_fractional_step_count_is_refused: sampling_steps accepting 2.5 steps (as 2).
- test_a_card_whose_sampling_is_not_an_object_keeps_the_default: sampling_steps reading ``sampling`` when it is no
  object.
- test_the_gain_reads_only_voxels_where_the_t1pre_images_the_body: acquired_scale.baseline_gain without ``T1-pre > 0``.
- test_the_scale_bounds_are_inclusive: acquired_scale_note and the plausible-gain warning, ``<=`` made ``<``.
"""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.errors import InputError


# ---------------------------------------------------------------- data_source.py
def _image(**metadata):
    image = sitk.Image(4, 4, 2, sitk.sitkFloat32)
    for key, value in metadata.items():
        image.SetMetaData(key, value)
    return image


def test_the_mark_must_start_the_text():
    """data_source: "NIfTI: descrip starting with PHANTOM_MARK": a description that only mentions the phantom (here a
    scanner export that names what it was compared with) is no mark; surrounding spaces do not matter."""
    from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, PHANTOM_MARK, input_source

    assert input_source(_image(descrip=PHANTOM_MARK + " case_000")) == PHANTOM
    assert input_source(_image(descrip="  " + PHANTOM_MARK)) == PHANTOM
    assert input_source(_image(descrip="compared with " + PHANTOM_MARK)) == NOT_MARKED
    assert input_source(_image(DCEDiff_source="not a " + PHANTOM_MARK)) == NOT_MARKED


def test_an_old_case_json_counts_only_with_synthetic_true(tmp_path):
    """A file beside a phantom case.json counts when it says ``"synthetic": true`` (JSON true), generator
    "DCEDiff phantom": the string "false" or the number 1 is not true."""
    from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, input_source, phantom_case_params

    sitk.WriteImage(_image(), str(tmp_path / "t2w.nrrd"))
    for synthetic, expected in ((True, PHANTOM), ("false", NOT_MARKED), (1, NOT_MARKED), ("true", NOT_MARKED)):
        (tmp_path / "case.json").write_text(json.dumps({"generator": "DCEDiff phantom v2", "synthetic": synthetic}))
        assert input_source(tmp_path / "t2w.nrrd") == expected, synthetic
        assert (phantom_case_params(tmp_path) is not None) == (expected == PHANTOM)


def test_a_folder_is_decided_by_its_first_file_that_reads_as_an_image(tmp_path):
    """_dicom_folder_marked: "The first file of the folder that reads as an image decides": a text file sorted before
    the images is passed over."""
    from DCEDiffLib.data_source import NOT_MARKED, PHANTOM, PHANTOM_MARK, SOURCE_KEY, input_source

    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "0_README.txt").write_text("exported series\n")
    sitk.WriteImage(_image(**{SOURCE_KEY: PHANTOM_MARK}), str(folder / "1_slice.nrrd"))
    assert input_source(folder) == PHANTOM
    other = tmp_path / "other"
    other.mkdir()
    (other / "0_README.txt").write_text("exported series\n")
    sitk.WriteImage(_image(), str(other / "1_slice.nrrd"))
    sitk.WriteImage(_image(**{SOURCE_KEY: PHANTOM_MARK}), str(other / "2_slice.nrrd"))
    assert input_source(other) == NOT_MARKED  # the first image decides, not any image


def test_inputs_given_as_none_are_left_out():
    """input_sources: "missing ones are left out": a modality given as None has no source."""
    from DCEDiffLib.data_source import PHANTOM, PHANTOM_MARK, SOURCE_KEY, input_sources
    from DCEDiffLib.modalities import INPUT_MODALITIES

    marked = _image(**{SOURCE_KEY: PHANTOM_MARK})
    assert input_sources({"t2w": marked, "pd": None, "adc": marked}, INPUT_MODALITIES) == {"t2w": PHANTOM,
                                                                                            "adc": PHANTOM}


# ---------------------------------------------------------------- model_registry.py
def test_only_the_generic_export_names_get_their_run_folder():
    """model_name: "its file stem, with the run folder for the generic names training exports" (model, best)."""
    from pathlib import Path

    from DCEDiffLib.model_registry import model_name

    assert model_name(Path("/runs/run3/best.safetensors")) == "run3/best"
    assert model_name(Path("/runs/run3/dcediff_cpu_phantom.safetensors")) == "dcediff_cpu_phantom"
    assert model_name(Path("/models/my_model.safetensors")) == "my_model"


# ---------------------------------------------------------------- extras.py
def test_a_missing_extra_is_named_by_its_distribution_and_said_once(monkeypatch):
    """extras: the skip line names what pip installs (scikit-image, not the import name skimage) and the extra, and
    extra_available "says so once per process"."""
    import importlib.util

    from DCEDiffLib import extras

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    monkeypatch.setattr(extras, "_said", set())
    assert extras.missing_modules("metrics") == ["scikit-image"]
    message = extras.skip_message("metrics")
    assert "needs scikit-image" in message and "dcediff[eval]" in message
    said = []
    assert extras.extra_available("metrics", said.append) is False
    assert extras.extra_available("metrics", said.append) is False
    assert said == [message]


# ---------------------------------------------------------------- cli_argv.py
def test_a_centre_starting_with_a_negative_fraction_is_joined():
    """join_negative_values: a value "that starts with a negative number" is joined; -.5 is one (argparse would take
    "-.5,1,2" for an option, as it is not a single number)."""
    from DCEDiffLib.cli_argv import join_negative_values

    assert join_negative_values(["--center", "-.5,1,2"]) == ["--center=-.5,1,2"]
    assert join_negative_values(["--center", "-x"]) == ["--center", "-x"]


# ---------------------------------------------------------------- sampling_steps.py
def test_a_fractional_step_count_is_refused():
    """resolve_steps: ``steps`` when given must be a whole number, 1 or more; 2.0 is 2, 2.5 is no step count."""
    from DCEDiffLib.sampling_steps import resolve_steps

    assert resolve_steps({}, "ddim", 2.0) == 2
    with pytest.raises(InputError, match="steps 2.5"):
        resolve_steps({}, "ddim", 2.5)


def test_a_card_whose_sampling_is_not_an_object_keeps_the_default():
    """resolve_steps reads ``sampling.residual_steps`` from a card's ``sampling`` object; anything else there (the
    Slicer module reads cards without the engine's checks) leaves the engine default."""
    from DCEDiffLib import defaults
    from DCEDiffLib.sampling_steps import resolve_steps

    for sampling in ([1], "3", 3):
        card = {"objective": "residual", "sampling": sampling}
        assert resolve_steps(card, defaults.DEFAULT_SAMPLER) == defaults.DEFAULT_STEPS
    card = {"objective": "residual", "sampling": {"residual_steps": 1}}
    assert resolve_steps(card, defaults.DEFAULT_SAMPLER) == 1


# ---------------------------------------------------------------- acquired_scale.py
def test_the_gain_reads_only_voxels_where_the_t1pre_images_the_body():
    """baseline_gain: body voxels are where the pre-contrast frame is bright *and* "T1-pre above 0": a T1-pre that
    is 0 outside its own field of view, over most of the DCE's body, must not drag its median to 0."""
    from DCEDiffLib.acquired_scale import baseline_gain

    frame = np.full((10, 10, 10), 200.0)
    t1 = np.zeros_like(frame)
    t1[:4] = 100.0                       # the T1-pre images 400 of the 1000 body voxels
    gain, voxels = baseline_gain(frame, t1)
    assert voxels == 400
    assert gain == pytest.approx(2.0)


def test_the_scale_bounds_are_inclusive():
    """acquired_scale_note: no words while the ratio is within 0.5–2.5× (bounds included); to_t1pre_scale warns only
    outside 0.1–10× (bounds included)."""
    from DCEDiffLib.acquired_scale import ACQUIRED_SCALE_RANGE, PLAUSIBLE_GAIN, acquired_scale_note, to_t1pre_scale

    t1 = np.full((4, 10, 10), 100.0)
    for ratio in ACQUIRED_SCALE_RANGE:
        assert acquired_scale_note(t1 * ratio, t1) is None, ratio
    assert acquired_scale_note(t1 * 2.6, t1) is not None
    for gain in PLAUSIBLE_GAIN:
        scaled, record = to_t1pre_scale({"dce_early": t1 * gain}, t1 * gain, t1)
        assert record["applied"] and "warning" not in record, gain
        np.testing.assert_allclose(scaled["dce_early"], t1, rtol=1e-6)
    assert "warning" in to_t1pre_scale({"dce_early": t1}, t1 * 10.5, t1)[1]
