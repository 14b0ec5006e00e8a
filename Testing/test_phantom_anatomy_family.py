"""The phantom's real-anatomy family ("prostatex"): warped label maps of two real exams (issue 17, sim-to-real)."""

import json
import socket

import numpy as np
import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import main
from DCEDiffLib.errors import InputError
from DCEDiffLib.phantom import LABEL_LEGEND, generate_case
from DCEDiffLib.phantom.generator import ANATOMY_FAMILIES, IMAGE_KEYS, case_anatomy
from DCEDiffLib.phantom.templates import TEMPLATE_NAMES, load_template, template_path, templates_dir

GLAND = [LABEL_LEGEND[n] for n in ("peripheral_zone", "transition_zone", "lesion", "anterior_fibromuscular_stroma")]


@pytest.fixture(scope="module")
def case():
    return generate_case(11, "A", anatomy="prostatex", lesion_count=2)


def gland_ml(labels: sitk.Image) -> float:
    array = sitk.GetArrayViewFromImage(labels)
    return float(np.isin(array, GLAND).sum()) * float(np.prod(labels.GetSpacing())) / 1000.0


def test_templates_load_from_the_package_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the templates must load without network access")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    load_template.cache_clear()
    for name in TEMPLATE_NAMES:
        path = template_path(name)
        assert path.parent == templates_dir() and path.stat().st_size < 300_000
        template = load_template(name)
        present = set(np.unique(template.labels))
        assert {LABEL_LEGEND[n] for n in ("fat", "muscle", "bladder", "rectum", "peripheral_zone",
                                           "transition_zone")} <= present, (name, present)
        assert present <= set(LABEL_LEGEND.values())
    with pytest.raises(InputError, match="anatomy template 'nope'"):
        template_path("nope")


def test_prostatex_case_has_every_modality_a_legend_and_its_family(case):
    assert set(IMAGE_KEYS) <= set(case.images)
    for key in IMAGE_KEYS:
        array = sitk.GetArrayViewFromImage(case.images[key])
        assert array.max() > 0 and np.count_nonzero(array) > array.size // 10, key
    assert case.params["label_legend"] == LABEL_LEGEND
    assert case.params["anatomy_family"] == "prostatex"
    assert case.params["anatomy"]["template"] in TEMPLATE_NAMES
    json.dumps(case.params)  # case.json is writable
    labels = sitk.GetArrayViewFromImage(case.labels)
    for name in ("fat", "muscle", "bladder", "rectum", "peripheral_zone", "transition_zone", "lesion"):
        assert np.any(labels == LABEL_LEGEND[name]), name
    # The lesions (as the procedural family draws them) lie inside the gland.
    assert len(case.params["lesions"]) == 2
    lesion = labels == LABEL_LEGEND["lesion"]
    gland = np.isin(labels, GLAND)
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(gland.astype(np.uint8)), [3, 3, 1]))
    assert np.all(grown[lesion] > 0)
    # T2W contrast of a pelvis: fat brighter than the transition zone, which is brighter than muscle.
    t2w = sitk.GetArrayViewFromImage(case.images["t2w"]).astype(float)
    median = {n: np.median(t2w[labels == LABEL_LEGEND[n]]) for n in ("fat", "muscle", "transition_zone")}
    assert median["fat"] > median["transition_zone"] > median["muscle"], median


def test_gland_volume_is_plausible(case):
    volumes = [gland_ml(case.labels)] + [gland_ml(generate_case(s, "A", anatomy="prostatex").labels)
                                         for s in (3, 4)]
    assert all(15.0 <= v <= 80.0 for v in volumes), volumes


def test_two_seeds_deform_differently_and_one_seed_is_reproducible(case):
    same = generate_case(11, "A", anatomy="prostatex", lesion_count=2)
    assert np.array_equal(sitk.GetArrayViewFromImage(same.labels), sitk.GetArrayViewFromImage(case.labels))
    assert np.array_equal(sitk.GetArrayViewFromImage(same.images["t2w"]),
                          sitk.GetArrayViewFromImage(case.images["t2w"]))
    seeds = [s for s in range(40) if case_anatomy(s, "prostatex")[1] == case.params["anatomy"]["template"]
             and s != 11][:1]
    other = generate_case(seeds[0], "A", anatomy="prostatex", lesion_count=2)
    assert other.params["anatomy"]["template"] == case.params["anatomy"]["template"]
    warp_a, warp_b = case.params["anatomy"]["warp"], other.params["anatomy"]["warp"]
    assert warp_a["scale"] != warp_b["scale"] and warp_a["elastic_phases"] != warp_b["elastic_phases"]
    assert abs(gland_ml(case.labels) - gland_ml(other.labels)) > 0.5


def test_default_stays_procedural_and_mixed_draws_both_families():
    assert generate_case.__kwdefaults__["anatomy"] == "procedural"
    assert ANATOMY_FAMILIES == ("procedural", "prostatex", "mixed")
    families = {case_anatomy(s, "mixed")[0] for s in range(20)}
    assert families == {"procedural", "prostatex"}
    assert case_anatomy(5, "procedural") == ("procedural", None)
    assert case_anatomy(5, "mixed") == case_anatomy(5, "mixed")
    with pytest.raises(InputError, match="anatomy 'real'"):
        generate_case(1, anatomy="real")


def test_cli_refuses_a_bad_anatomy_in_one_clear_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["phantom", "--anatomy", "real", "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--anatomy 'real'" in err[0] and "procedural, prostatex, mixed" in err[0], err
    assert not out.exists()


def test_cli_writes_a_prostatex_dataset_recording_family_and_template(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["phantom", "--anatomy", "prostatex", "--cases", "1", "--seed", "3", "--no-dce-series",
                 "--out", str(out)]) == 0
    dataset = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert dataset["anatomy"] == "prostatex"
    entry = dataset["cases"][0]
    assert entry["anatomy_family"] == "prostatex" and entry["anatomy_template"] in TEMPLATE_NAMES
    params = json.loads((out / "case_000" / "case.json").read_text(encoding="utf-8"))
    assert params["anatomy_family"] == "prostatex" and params["anatomy"]["template"] == entry["anatomy_template"]
    assert "anatomy prostatex" in capsys.readouterr().out


def test_taps_finds_the_gland_of_a_prostatex_case():
    """The realism check of issue 17 on one case (docs/phantom.md, "Real-anatomy family"): ~10 s."""
    from DCEDiffLib import prostate_localization

    reason = prostate_localization.unavailable_reason()
    if reason is not None:
        pytest.skip(f"TAPS not installed: {reason}")
    phantom = generate_case(2063826779, "A", anatomy="prostatex")  # seed 7301, case 10 of the report
    mask = sitk.GetArrayFromImage(prostate_localization.fast_mask(phantom.images["t2w"])) > 0
    gland = np.isin(sitk.GetArrayViewFromImage(phantom.labels), GLAND)
    dice = 2.0 * np.logical_and(mask, gland).sum() / (mask.sum() + gland.sum())
    assert dice > 0.7, dice


def test_lesions_keep_their_zone_contrast_when_the_zones_are_redrawn():
    """Unit: each lesion's TSE signal stands to its zone's as with the shared tables; nothing else moves."""
    import dataclasses

    from DCEDiffLib.phantom.template_anatomy import _tse, lesions_keep_zone_contrast
    from DCEDiffLib.phantom.tissues import Tissue

    def tissue(name, t2, pd=0.8, t1=1.6):
        return Tissue(name, {"t1": t1, "t2": t2, "pd": pd}, {}, ())

    shared = {"transition_zone": tissue("transition_zone", 0.100), "peripheral_zone": tissue("peripheral_zone", 0.150),
              "lesion_1": tissue("lesion_1", 0.060, pd=0.7, t1=1.5), "lesion_2": tissue("lesion_2", 0.080)}
    # The transition zone darkened (as match_source_t2w_contrast does), the peripheral zone left as it was.
    matched = dict(shared, transition_zone=dataclasses.replace(shared["transition_zone"],
                                                               values={"t1": 1.6, "t2": 0.055, "pd": 0.8}))
    lesions = [{"id": 1, "zone": "transition_zone", "t2_ms": 60.0}, {"id": 2, "zone": "peripheral_zone", "t2_ms": 80.0}]
    out = lesions_keep_zone_contrast(shared, matched, lesions)
    for info in lesions:
        name, zone = f"lesion_{info['id']}", info["zone"]
        before = _tse(shared[name].values) / _tse(shared[zone].values)
        assert _tse(out[name].values) / _tse(out[zone].values) == pytest.approx(before, rel=1e-9)
        assert info["t2_ms"] == pytest.approx(out[name].values["t2"] * 1000, abs=0.01)
        assert {k: v for k, v in out[name].values.items() if k != "t2"} == \
            {k: v for k, v in shared[name].values.items() if k != "t2"}
    assert out["lesion_1"].values["t2"] < shared["lesion_1"].values["t2"]  # darker zone, darker lesion
    assert out["lesion_2"].values["t2"] == pytest.approx(shared["lesion_2"].values["t2"])  # zone unchanged
    assert out["transition_zone"] is matched["transition_zone"] and shared["lesion_1"].values["t2"] == 0.060


def test_transition_zone_lesions_are_darker_than_their_zone_on_t2w():
    """Generator version 3: a real-anatomy TZ lesion is darker than the TZ around it on the T2W, as the analytic
    family's are (version 2 drew them as bright as their zone: 0.93 and 0.98 for this case)."""
    from DCEDiffLib.phantom.realism import measure_case

    measured = measure_case(generate_case(20, "A", anatomy="prostatex", lesion_count=3))
    ratios = [lesion["t2w_ratio"] for lesion in measured["lesions"] if lesion["zone"] == "transition_zone"]
    assert len(ratios) == 2 and all(0.3 < r < 0.8 for r in ratios), ratios
