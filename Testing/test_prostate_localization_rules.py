"""Crop-centre rules of prostate_localization at their definitions, with the model replaced by masks made here
(found by a mutation audit): a gland that reaches the window's in-plane border brings a second window centred on
it; only the in-plane border counts; a mask outside the plausible volume, too small as well as too large, falls
back to the field-of-view centre; a cached mask is never reused for the same voxels placed elsewhere."""

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib import prostate_localization as pl

SIZE = (161, 161, 41)        # (i, j, k); the field-of-view centre is voxel (80, 80, 20)
SPACING = (1.0, 1.0, 3.0)    # mm


def t2w_and_mask(boxes):
    """An axial T2W (LPS identity direction) and a mask on its grid with the given (i, j, k) index boxes set."""
    t2w = sitk.GetImageFromArray(np.random.default_rng(0).uniform(1, 2, SIZE[::-1]).astype(np.float32))
    t2w.SetSpacing(SPACING)
    array = np.zeros(SIZE[::-1], np.uint8)
    for (i0, i1), (j0, j1), (k0, k1) in boxes:
        array[k0:k1, j0:j1, i0:i1] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(t2w)
    return t2w, mask


def test_only_the_in_plane_border_of_the_window_within_its_margin_counts():
    """_touches_window_border: whether the gland reaches within ``margin_mm`` (4 mm) of the in-plane border of the
    128 × 128 voxel (0.8 mm: ±51.2 mm) window around the centre. A voxel 49 mm to the side is within the margin
    (47.2 mm); one 40 mm to the side is not; one 48 mm above the centre (through-plane) is not in-plane at all."""
    centre = np.asarray(pl._fov_centre(t2w_and_mask([])[0]))
    half = pl.ROI_SIZE[0] * pl.NATIVE_SPACING[0] / 2.0
    assert half - 4.0 == pytest.approx(47.2)
    cases = [(((129, 130), (80, 81), (20, 21)), True),    # 49 mm to the left (i)
             (((80, 81), (31, 32), (20, 21)), True),      # 49 mm anterior (j)
             (((120, 121), (80, 81), (20, 21)), False),   # 40 mm to the left
             (((80, 81), (80, 81), (36, 37)), False)]     # 48 mm through-plane
    for box, touches in cases:
        t2w, mask = t2w_and_mask([box])
        assert pl._touches_window_border(mask, t2w, centre) is touches, box
    assert pl._touches_window_border(*t2w_and_mask([])[::-1], centre) is False


def test_a_gland_at_the_window_border_brings_a_second_window_centred_on_it(monkeypatch):
    """fast_mask: one window at the field-of-view centre, 'a second one centred on the first gland found when that
    gland reaches the window's border'; a gland well inside the first window needs no second one."""
    t2w, at_border = t2w_and_mask([((120, 132), (74, 86), (17, 23))])
    _, inside = t2w_and_mask([((74, 86), (74, 86), (17, 23))])
    centres = []

    def segment(image, centre_lps=None, should_cancel=None, **_):
        centres.append(np.asarray(centre_lps, dtype=float))
        return answers.pop(0)

    monkeypatch.setattr(pl, "segment_prostate", segment)
    answers = [at_border, inside]
    assert pl.fast_mask(t2w) is inside
    assert len(centres) == 2
    np.testing.assert_allclose(centres[0], pl._fov_centre(t2w))
    np.testing.assert_allclose(centres[1], pl.mask_centre(at_border))
    assert np.linalg.norm(centres[1] - centres[0]) > 40  # moved to the gland (about 45.5 mm to the side)
    centres.clear()
    answers = [inside]
    assert pl.fast_mask(t2w) is inside and len(centres) == 1


@pytest.mark.parametrize("boxes, plausible", [
    ([((78, 82), (78, 82), (19, 21))], False),            # 32 voxels × 3 µL: 0.1 mL, a speck, no gland
    ([((60, 100), (60, 100), (15, 25))], True),           # 16000 voxels × 3 µL: 48 mL
    ([((0, 161), (0, 161), (0, 41))], False)])            # the whole field of view: 3.2 L
def test_a_mask_outside_the_plausible_volume_falls_back_to_the_field_of_view_centre(monkeypatch, boxes, plausible):
    """locate_prostate: the field-of-view centre 'when the mask is empty or implausible' (outside PLAUSIBLE_ML, 5 to
    200 mL), with the reason given to ``warn``; a plausible mask gives its centroid."""
    t2w, mask = t2w_and_mask(boxes)
    monkeypatch.setattr(pl, "unavailable_reason", lambda: None)
    monkeypatch.setattr(pl, "_cached_fast_mask", lambda image, use_cache, should_cancel=None: (mask, False))
    said = []
    location = pl.locate_prostate(t2w, warn=said.append)
    volume = pl.mask_volume_ml(mask)
    assert (pl.PLAUSIBLE_ML[0] <= volume <= pl.PLAUSIBLE_ML[1]) is plausible
    if plausible:
        assert location.source == pl.SOURCE_MODEL and not said and location.volume_ml == pytest.approx(volume)
        np.testing.assert_allclose(location.centre_lps, pl.mask_centre(mask))
    else:
        assert location.source == pl.SOURCE_FOV and location.mask is None
        np.testing.assert_allclose(location.centre_lps, pl._fov_centre(t2w))
        assert len(said) == 1 and "outside the plausible" in said[0] and said[0] == location.note


def test_a_cached_mask_is_never_taken_for_the_same_voxels_placed_elsewhere(monkeypatch, tmp_path):
    """Masks are cached per T2W content, and the cache key holds the grid's geometry too: the same voxels with
    another origin (a re-exported series, a registration's output) lie elsewhere in the patient, so their gland
    centre moves with the origin instead of being the first image's cached centre."""
    monkeypatch.setenv("DCEDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pl, "_memory_cache", {})
    monkeypatch.setattr(pl, "unavailable_reason", lambda: None)
    computed = []

    def fast_mask(image, should_cancel=None):
        computed.append(image.GetOrigin())
        _, mask = t2w_and_mask([((60, 100), (60, 100), (15, 25))])
        mask.CopyInformation(image)
        return mask

    monkeypatch.setattr(pl, "fast_mask", fast_mask)
    first, _ = t2w_and_mask([])
    moved = sitk.Image(first)
    moved.SetOrigin((10.0, -5.0, 30.0))
    here = pl.locate_prostate(first, warn=pytest.fail)
    again = pl.locate_prostate(sitk.Image(first), warn=pytest.fail)
    there = pl.locate_prostate(moved, warn=pytest.fail)
    assert again.cached and np.allclose(again.centre_lps, here.centre_lps) and len(computed) == 2
    assert not there.cached
    np.testing.assert_allclose(np.subtract(there.centre_lps, here.centre_lps), (10.0, -5.0, 30.0), atol=1e-6)


def _counting_model(monkeypatch, tmp_path, boxes):
    """The prostate model replaced by one that finds ``boxes`` (t2w_and_mask's index boxes) and counts its looks;
    empty caches in ``tmp_path``. Returns (T2W, the list of looks)."""
    monkeypatch.setenv("DCEDIFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pl, "_memory_cache", {})
    monkeypatch.setattr(pl, "unavailable_reason", lambda: None)
    looks = []

    def fast_mask(image, should_cancel=None):
        looks.append(1)
        _, mask = t2w_and_mask(boxes)
        mask.CopyInformation(image)
        return mask

    monkeypatch.setattr(pl, "fast_mask", fast_mask)
    return t2w_and_mask([])[0], looks


def test_inside_computed_afresh_the_caches_are_neither_read_nor_written(monkeypatch, tmp_path):
    """computed_afresh (what the benchmark times end to end): a first look at an exam, so a mask cached in memory or
    on disk by an earlier run is not taken, and the look leaves nothing in either cache; outside it, the cache
    answers again. The location says whether the mask came from the cache and how long the model took, in
    synthesis.json too, also when the model found no gland."""
    t2w, computed = _counting_model(monkeypatch, tmp_path, [((60, 100), (60, 100), (15, 25))])
    first = pl.locate_prostate(t2w, warn=pytest.fail)  # fills both caches
    assert not first.cached and len(computed) == 1 and len(list(pl.cache_dir().iterdir())) == 1
    pl._memory_cache.clear()  # a new process: the disk entry alone would answer
    with pl.computed_afresh():
        fresh = pl.locate_prostate(t2w, warn=pytest.fail)
    assert not fresh.cached and len(computed) == 2 and not pl._memory_cache
    assert fresh.to_dict()["prostate_mask_cached"] is False and fresh.to_dict()["prostate_seconds"] >= 0
    again = pl.locate_prostate(t2w, warn=pytest.fail)
    assert again.cached and len(computed) == 2 and again.to_dict()["prostate_mask_cached"] is True

    monkeypatch.setattr(pl, "fast_mask", lambda image, should_cancel=None: (computed.append(1), sitk.Image(
        image.GetSize(), sitk.sitkUInt8))[1])  # the model finds nothing
    with pl.computed_afresh():
        nothing = pl.locate_prostate(t2w, warn=lambda note: None)
    assert nothing.source == pl.SOURCE_FOV and len(computed) == 3
    recorded = nothing.to_dict()
    assert recorded["prostate_mask_cached"] is False and "prostate_seconds" in recorded
    assert "no gland" in recorded["crop_centre_note"]


# ---------------------------------------------------------------- round-19 mutation audit: the documented rules
def test_computed_afresh_ends_with_its_block_also_on_an_error_and_holds_for_a_nested_block(monkeypatch, tmp_path):
    """computed_afresh: 'Inside, every gland mask is computed by the model': inside an inner block and still inside
    the outer one after the inner ends; outside (also after an error inside, such as a cancelled run) the cache
    answers again."""
    t2w, looks = _counting_model(monkeypatch, tmp_path, [((60, 100), (60, 100), (15, 25))])
    pl.locate_prostate(t2w, warn=pytest.fail)   # cached now
    with pl.computed_afresh():
        with pl.computed_afresh():
            assert not pl.locate_prostate(t2w, warn=pytest.fail).cached
        assert not pl.locate_prostate(t2w, warn=pytest.fail).cached and len(looks) == 3
    with pytest.raises(RuntimeError, match="cancelled"):
        with pl.computed_afresh():
            raise RuntimeError("cancelled")
    assert pl.locate_prostate(t2w, warn=pytest.fail).cached and len(looks) == 3


def test_every_look_of_the_model_is_recorded_and_none_where_it_did_not_look(monkeypatch, tmp_path):
    """docs/preprocessing.md: 'wherever the model looked (also when it found no gland), prostate_seconds (0 for a
    cached mask) and prostate_mask_cached'. A gland outside the plausible volume (one voxel, 0.003 mL) falls back to
    the field-of-view centre with the model's seconds and, on the next run, its cached mask is recorded as cached
    with 0 s; so is a cached mask in which the model found no gland. Where the model did not look (the extra
    missing, a user's centre, the prostate search off) nothing of it is recorded."""
    t2w, looks = _counting_model(monkeypatch, tmp_path, [((80, 81), (80, 81), (20, 21))])   # 1 mm × 1 mm × 3 mm
    tiny = pl.locate_prostate(t2w, warn=lambda note: None)
    assert tiny.source == pl.SOURCE_FOV and "outside the plausible" in tiny.note and not tiny.cached
    recorded = tiny.to_dict()
    assert recorded["prostate_mask_cached"] is False and recorded["prostate_seconds"] == round(tiny.seconds, 2)
    assert tiny.seconds > 0   # the model's look took time
    again = pl.locate_prostate(t2w, warn=lambda note: None).to_dict()
    assert len(looks) == 1 and "outside the plausible" in again["crop_centre_note"]
    assert again["prostate_mask_cached"] is True and again["prostate_seconds"] == 0
    t2w, looks = _counting_model(monkeypatch, tmp_path / "none", [])
    pl.locate_prostate(t2w, warn=lambda note: None)
    nothing = pl.locate_prostate(t2w, warn=lambda note: None).to_dict()
    assert len(looks) == 1 and "no gland" in nothing["crop_centre_note"]
    assert nothing["prostate_mask_cached"] is True and nothing["prostate_seconds"] == 0
    monkeypatch.setattr(pl, "unavailable_reason", lambda: "the prostate extra is not installed")
    unavailable = pl.locate_prostate(t2w, warn=lambda note: None).to_dict()
    assert "not installed" in unavailable["crop_centre_note"] and len(looks) == 1   # the control: it did not look
    for location in (unavailable, pl.ProstateLocation((1.0, 2.0, 3.0), pl.SOURCE_USER).to_dict(),
                     pl.ProstateLocation((1.0, 2.0, 3.0), pl.SOURCE_FOV).to_dict()):
        assert not any(key.startswith("prostate_") for key in location), location


def test_the_models_seconds_are_recorded_to_the_hundredth():
    """ProstateLocation.to_dict records ``seconds``, 'the model's time' (docs/performance.md compares windows of
    2.4–2.6 s): 2.44 s is written as 2.44 s, not rounded to whole seconds."""
    location = pl.ProstateLocation((0.0, 0.0, 0.0), pl.SOURCE_MODEL, volume_ml=30.0, seconds=2.44)
    assert location.to_dict()["prostate_seconds"] == pytest.approx(2.44, abs=0.005)
