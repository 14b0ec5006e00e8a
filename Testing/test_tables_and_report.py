"""Tables (aggregation, metrics.json/.csv/.md) and the report PNG."""

import csv
import json
import math

import numpy as np
import pytest

from DCEDiffLib.errors import InputError
from DCEDiffLib.evaluation.case_evaluation import evaluate_case
from DCEDiffLib.evaluation.report_figure import write_report_png
from DCEDiffLib.evaluation.tables import aggregate, format_stat, write_metrics

LEGEND = {"background": 0, "peripheral_zone": 7, "transition_zone": 8, "lesion": 9}


def case_arrays(seed=0, K=4, H=40, W=40):
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[0:K, 0:H, 0:W]
    body = ((j - H / 2) / (0.42 * H)) ** 2 + ((i - W / 2) / (0.45 * W)) ** 2 <= 1
    gland = ((j - H / 2) / 8.0) ** 2 + ((i - W / 2) / 9.0) ** 2 <= 1
    lesion = gland & ((j - H / 2 - 5) ** 2 + (i - W / 2 - 2) ** 2 <= 4)
    labels = (7 * gland + 2 * lesion).astype(np.int16)
    labels[gland & (np.abs(j - H / 2) < 3)] = 8
    labels[lesion] = 9
    t1 = np.where(body, 300.0, 4.0) + 40 * gland + rng.normal(0, 5, (K, H, W))
    early = t1 + 60.0 * gland + 100.0 * lesion + rng.normal(0, 5, (K, H, W))
    late = t1 + 140.0 * gland + 40.0 * lesion + rng.normal(0, 5, (K, H, W))
    inputs = {"t2w": np.where(body, 400.0, 3.0) - 200 * lesion + rng.normal(0, 10, (K, H, W)),
              "pd": np.where(body, 700.0, 5.0) + rng.normal(0, 10, (K, H, W)),
              "adc": np.where(body, 1500.0, 0.0) - 700 * lesion, "t1pre": t1}
    f32 = lambda a: np.abs(a).astype(np.float32)  # noqa: E731
    return ({m: f32(v) for m, v in inputs.items()}, {"early": f32(early), "late": f32(late)}, labels)


def test_aggregate_mean_std_and_counts_on_known_values():
    cases = [{"early": {"whole": {"psnr": 10.0, "mae": 0.1}}, "notes": ["x"], "info": {"voxels": 5}},
             {"early": {"whole": {"psnr": 20.0, "mae": None}}, "notes": []},
             {"early": {"whole": {"psnr": 30.0, "mae": 0.3}}},
             {"early": {"whole": {"psnr": "inf", "mae": 0.0}}}]
    summary = aggregate(cases)
    psnr = summary["early"]["whole"]["psnr"]
    assert psnr["mean"] == pytest.approx(20.0) and psnr["std"] == pytest.approx(math.sqrt(200 / 3))
    assert (psnr["n"], psnr["n_none"], psnr["n_inf"]) == (3, 0, 1)
    mae = summary["early"]["whole"]["mae"]
    assert mae["mean"] == pytest.approx(0.4 / 3) and (mae["n"], mae["n_none"]) == (3, 1)
    assert summary["n_cases"] == 4 and "info" not in summary and "notes" not in summary
    assert format_stat(psnr, 2) == "20.00 ± 8.16 (1 perfect (∞))"
    assert format_stat({"mean": None, "std": None, "n": 0, "n_none": 2, "n_inf": 0}) == "undefined"
    # one case has no spread: no "± 0.000" that reads as a measured zero
    assert format_stat({"mean": -0.129, "std": 0.0, "n": 1, "n_none": 3, "n_inf": 0}) == "-0.129 (1 case, 3 undefined)"
    from DCEDiffLib.evaluation.protocol import format_paired, paired_bootstrap

    one = paired_bootstrap([0.5, None], [0.25, 0.1])
    assert one == {"mean": 0.25, "ci95": None, "n": 1} and format_paired(one) == "+0.25 (n 1)"
    two = paired_bootstrap([0.5, 0.3], [0.25, 0.2])
    low, high = two["ci95"]
    assert two["n"] == 2 and low < high and format_paired(two, 3) == f"+0.175 [{low:+.3f}, {high:+.3f}]"
    assert format_paired(paired_bootstrap([None], [1.0])) == "–"
    with pytest.raises(InputError):
        aggregate({"not": "a list"})


@pytest.fixture(scope="module")
def evaluated():
    """Per-method case results for two cases: a noisy 'model', the identity baseline, a perfect prediction."""
    from DCEDiffLib.evaluation.baselines import identity_baseline

    results = {"model": [], "identity": [], "perfect": []}
    for seed in (0, 1):
        inputs, acquired, labels = case_arrays(seed)
        rng = np.random.default_rng(seed + 10)
        noisy = {t: (v + rng.normal(0, 15, v.shape)).astype(np.float32) for t, v in acquired.items()}
        identity = identity_baseline(inputs["t1pre"], acquired["early"])
        for method, prediction in (("model", noisy), ("identity", {"early": identity, "late": identity}),
                                   ("perfect", acquired)):
            row = evaluate_case(prediction, acquired, inputs["t1pre"], labels, LEGEND)
            row["case"] = f"case{seed}"
            results[method].append(row)
    return results


def test_write_metrics_writes_json_csv_and_markdown(tmp_path, evaluated):
    meta = {"model": "tiny.safetensors", "sampler": "dpmpp", "steps": 20, "seed": 0, "not_json": tmp_path,
            "fid": {"model": {"early": {"fid": 12.5, "kid": {"mean": 0.004, "std": 0.001}, "slices": 8}},
                    "identity": {"early": {"fid": 30.25, "kid": {"mean": 0.02, "std": 0.002}, "slices": 8}}}}
    paths = write_metrics(tmp_path / "eval", evaluated, meta)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["metrics.csv", "metrics.json", "metrics.md"]

    def refuse_constant(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    document = json.loads(paths["json"].read_text(encoding="utf-8"), parse_constant=refuse_constant)
    assert set(document) >= {"meta", "legend", "summary", "cases"}
    assert document["cases"]["perfect"][0]["early"]["whole"]["psnr"] == "inf"
    assert document["summary"]["perfect"]["early"]["whole"]["psnr"]["n_inf"] == 2
    assert document["summary"]["identity"]["early"]["enhancement"]["body"]["pearson"]["n_none"] == 2
    expected_psnr = np.mean([c["early"]["whole"]["psnr"] for c in evaluated["model"]])
    assert document["summary"]["model"]["early"]["whole"]["psnr"]["mean"] == pytest.approx(expected_psnr)
    assert document["meta"]["not_json"] == str(tmp_path)

    with open(paths["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"method", "case", "target", "group", "region", "metric", "value", "note"}
    first = evaluated["model"][0]["early"]["whole"]["psnr"]
    match = [r for r in rows if (r["method"], r["case"], r["target"], r["group"], r["region"], r["metric"])
             == ("model", "case0", "early", "image", "whole", "psnr")]
    assert len(match) == 1 and float(match[0]["value"]) == pytest.approx(first)
    perfect = [r for r in rows if r["method"] == "perfect" and r["metric"] == "psnr" and r["group"] == "image"]
    assert perfect and all(r["value"] == "inf" for r in perfect)
    undefined = [r for r in rows if r["method"] == "identity" and r["metric"] == "pearson" and r["group"] == "enhancement"]
    assert undefined and all(r["value"] == "" and "no enhancement" in r["note"] for r in undefined)
    through = [r for r in rows if r["group"] == "through_plane" and r["method"] == "perfect" and r["target"] == "early"]
    assert {r["metric"] for r in through} == {"roughness_ratio", "pearson", "pairs"}
    assert all(r["region"] == "body" for r in through)
    assert float(next(r["value"] for r in through if r["metric"] == "roughness_ratio")) == pytest.approx(1.0)
    keys = {(r["method"], r["case"], r["target"], r["group"], r["region"], r["metric"]) for r in rows}
    assert len(keys) == len(rows)  # one row per method × case × target × region × metric

    markdown = paths["md"].read_text(encoding="utf-8")
    for method in ("model", "identity", "perfect"):
        assert f"| {method} |" in markdown
    assert "| method | early PSNR (dB) | early SSIM | early MAE | late PSNR (dB) | late SSIM | late MAE |" in markdown
    assert "| identity | early |" in markdown and "undefined" in markdown and "∞" in markdown
    assert "12.50" in markdown and "4.00 ± 1.00" in markdown  # FID and KID ×10³
    assert "## Legend" in markdown and "- **psnr**" in markdown and "- **cnr**" in markdown
    assert not list((tmp_path / "eval").glob("*.partial*"))


def test_report_png_is_written_and_not_blank(tmp_path):
    import matplotlib.image

    inputs, acquired, labels = case_arrays(3)
    rng = np.random.default_rng(4)
    synthetic = {t: (v + rng.normal(0, 10, v.shape)).astype(np.float32) for t, v in acquired.items()}
    rows = [{"title": "best: case3", "inputs": inputs, "synthetic": synthetic, "acquired": acquired,
             "labels": labels, "legend": LEGEND},
            {"title": "synthesis only", "inputs": inputs, "synthetic": synthetic, "acquired": None,
             "uncertainty": {t: np.abs(v - acquired[t]) for t, v in synthetic.items()}}]
    path = write_report_png(tmp_path / "report.png", rows,
                            provenance="generated by DCEDiff (model tiny, sampler dpmpp, 20 steps, seed 0)")
    assert path.stat().st_size > 50_000
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 800 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    orange = np.all(np.abs(pixels[..., :3] - np.array([1.0, 159 / 255, 28 / 255])) < 0.02, axis=-1)
    assert orange.sum() > 2000  # the SYNTHETIC header and labels are there
    assert not list(tmp_path.glob("*.partial*"))


def test_report_rejects_mismatched_volumes(tmp_path):
    inputs, acquired, _ = case_arrays(5)
    bad = {"early": acquired["early"][:, :20], "late": acquired["late"]}
    with pytest.raises(InputError, match="shape"):
        write_report_png(tmp_path / "r.png", [{"title": "x", "inputs": inputs, "synthetic": bad, "acquired": None}])
    with pytest.raises(InputError, match="inputs lack"):
        write_report_png(tmp_path / "r.png", [{"title": "x", "inputs": {"t2w": inputs["t2w"]},
                                               "synthetic": acquired}])
    assert not (tmp_path / "r.png").exists()


# ------------------------------------------------------------------------------- what a radiologist reads (issue 16)

def _texts(fig):
    """Every text on the figure: figure texts, axes texts and titles, colour-bar labels."""
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts] + [ax.get_title(), ax.get_ylabel()]
    return [t for t in out if t]


def _report_rows(grid=True, metrics=None):
    inputs, acquired, labels = case_arrays(3, K=4, H=48, W=48)
    rng = np.random.default_rng(4)
    synthetic = {t: (v + rng.normal(0, 10, v.shape)).astype(np.float32) for t, v in acquired.items()}
    row = {"title": "case phantom_case (T2W: t2w.nii.gz)", "inputs": inputs, "synthetic": synthetic,
           "acquired": acquired, "labels": labels, "legend": LEGEND,
           "uncertainty": {t: np.abs(v - acquired[t]) for t, v in synthetic.items()}}
    if grid:
        row["grid"] = {"direction": [1, 0, 0, 0, 1, 0, 0, 0, 1], "spacing": [1.5, 1.5, 3.0]}
    if metrics is not None:
        row["metrics"] = metrics
    return row


def test_orientation_letters_follow_the_grid_direction():
    from DCEDiffLib.evaluation.report_figure import orientation, orientation_words

    lps = orientation({"direction": [1, 0, 0, 0, 1, 0, 0, 0, 1]})  # DICOM axial: i → patient left, j → posterior
    assert (lps["left"], lps["right"], lps["top"], lps["bottom"], lps["plane"]) == ("R", "L", "A", "P", "axial")
    assert not lps["assumed"] and "radiological" in orientation_words(lps)
    flipped = orientation({"direction": [-1, 0, 0, 0, -1, 0, 0, 0, 1]})  # RAS-like storage of the same slab
    assert (flipped["left"], flipped["right"], flipped["top"], flipped["bottom"]) == ("L", "R", "P", "A")
    coronal = orientation({"direction": [1, 0, 0, 0, 0, -1, 0, 1, 0]})
    assert coronal["plane"] == "coronal" and (coronal["top"], coronal["bottom"]) == ("I", "S")
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    oblique = orientation({"direction": [c, -s, 0, s, c, 0, 0, 0, 1]})
    assert oblique["left"] == "R" and oblique["oblique_deg"] == pytest.approx(20)
    assert "oblique by 20°" in orientation_words(oblique)
    assumed = orientation(None)
    assert assumed["assumed"] and assumed["left"] == "R" and "ASSUMED" in orientation_words(assumed)


def test_report_has_case_line_metrics_units_scale_and_orientation(monkeypatch):
    from DCEDiffLib.evaluation import report_figure

    outlined, annotated = [], []
    real_outline, real_annotate = report_figure._outline, report_figure._annotate
    monkeypatch.setattr(report_figure, "_outline",
                        lambda ax, masks, k: (outlined.append(ax.get_title()), real_outline(ax, masks, k)))
    monkeypatch.setattr(report_figure, "_annotate",
                        lambda ax, *a: (annotated.append(ax.get_title()), real_annotate(ax, *a)))
    fig = report_figure.report_figure([_report_rows()], provenance="generated by DCEDiff (tiny)")
    texts = _texts(fig)
    joined = "\n".join(texts)
    assert "case phantom_case (T2W: t2w.nii.gz)" in joined  # the case line is filled
    for letter in ("R", "L", "A", "P"):
        assert letter in texts
    assert "10 mm" in texts  # 48 px × 1.5 mm = 72 mm: the largest bar within a quarter of the width
    assert "1.5 × 1.5 mm pixels, 3 mm slices" in joined and "from the grid's direction" in joined
    assert joined.count("early: PSNR") == 1 and joined.count("late: PSNR") == 1 and "prostate enh. r" in joined
    bars = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert bars and all("%" in label for label in bars)  # no raw intensities
    assert "enhancement, % of T1-pre" in bars and "% of the DCE window" in bars
    for target in ("early", "late"):  # outlines on every acquired, synthetic and enhancement panel
        for title in (f"acquired {target}", f"SYNTHETIC {target}", f"acquired enhancement {target}",
                      f"SYNTHETIC enhancement {target}"):
            assert title in outlined, title
    assert "T2W" in outlined and {"T2W", "acquired early", "acquired late"} <= set(annotated)
    images = [ax for ax in fig.axes if ax.images and ax.get_title() in ("T2W", "PD", "ADC", "T1 pre-contrast",
                                                                         "SYNTHETIC early")]
    sizes = {tuple(np.round(ax.get_position().size, 4)) for ax in images}
    assert len(images) == 5 and len(sizes) == 1  # the inputs are as large as the images below them


def test_report_metrics_match_evaluate_case_and_missing_geometry_is_said():
    from DCEDiffLib.evaluation.report_figure import case_metrics, metric_words, report_figure

    row = _report_rows(grid=False)
    expected = evaluate_case(row["synthetic"], row["acquired"], row["inputs"]["t1pre"], row["labels"], LEGEND)
    computed = case_metrics(row)
    assert computed["early"]["whole"]["psnr"] == pytest.approx(expected["early"]["whole"]["psnr"])
    words = metric_words(computed, "early")
    assert words.startswith(f"PSNR {expected['early']['whole']['psnr']:.2f} dB · SSIM")
    given = {"early": {"whole": {"psnr": "inf", "ssim": 1.0}, "enhancement": {}},
             "late": {"whole": {"psnr": 20.0, "ssim": None}}}
    assert metric_words(given, "early") == "PSNR ∞ dB · SSIM 1.000"
    assert metric_words(given, "late") == "PSNR 20.00 dB · SSIM undefined" and metric_words(given, "x") is None
    texts = _texts(report_figure([row]))
    joined = "\n".join(texts)
    assert "ASSUMED" in joined and "pixel size unknown" in joined
    assert not any(t.endswith(" mm") for t in texts)  # no scale bar without a known pixel size
    no_dce = dict(row, acquired=None)
    assert case_metrics(no_dce) is None
    assert "no acquired DCE: synthetic only, no metrics" in "\n".join(_texts(report_figure([no_dce])))


def test_the_outline_legend_names_only_the_outlines_drawn():
    """A real exam's gland outline is the prostate model's mask: no lesion is marked, so the legend must not list
    one (it did: 'outlines: prostate (cyan), lesion (yellow)' on every real exam)."""
    from DCEDiffLib.evaluation.report_figure import report_figure
    from DCEDiffLib.pipeline import AUTOMATIC_MASK_SOURCE

    row = _report_rows()
    joined = "\n".join(_texts(report_figure([row])))
    assert "outlines: prostate (cyan), lesion (yellow)" in joined  # the phantom's label map has both
    gland = (np.asarray(row["labels"]) > 0).astype(np.int16)
    real = dict(row, acquired=None, labels=gland, legend={"prostate": 1}, labels_source=AUTOMATIC_MASK_SOURCE)
    joined = "\n".join(_texts(report_figure([real])))
    assert "outlines: prostate (cyan)" in joined and "lesion (yellow)" not in joined
    assert AUTOMATIC_MASK_SOURCE in joined
    unlabelled = dict(row, labels=None, legend=None)
    assert "outlines:" not in "\n".join(_texts(report_figure([unlabelled])))


def test_the_spread_column_shows_the_expected_error_before_the_sample_std():
    """The card's expected |error| has the error's size; the sample std of the shipped card is a tenth of it
    (docs/model_quality.md, "The curve over K"), so the map takes the column whenever a run has one."""
    from DCEDiffLib.evaluation.report_figure import report_figure

    row = _report_rows()
    both = dict(row, expected_error={t: 2.0 * v + 1.0 for t, v in row["uncertainty"].items()})
    texts = _texts(report_figure([both]))
    assert "expected |error| early" in texts and "expected |error| late" in texts
    assert not any("sample std" in t for t in texts)
    texts = _texts(report_figure([row]))  # a card without an error model, several samples: the sample std
    assert "uncertainty early (sample std)" in texts and not any("expected |error|" in t for t in texts)
    one_sample = {k: v for k, v in row.items() if k != "uncertainty"}
    texts = _texts(report_figure([one_sample, both]))  # the column is there for the row with a map only
    assert "no error map\n(one sample, no error model)" in texts
    bad = dict(row, expected_error={"early": row["uncertainty"]["early"][:, :10], "late": row["uncertainty"]["late"]})
    with pytest.raises(InputError, match="expected_error early has shape"):
        report_figure([bad])


def test_relative_enhancement_and_case_title():
    from DCEDiffLib.evaluation.report_figure import _relative_enhancement, case_title

    t1 = np.array([[100.0, 200.0], [1.0, 0.0]])
    dce = np.array([[150.0, 200.0], [5.0, 3.0]])
    out = _relative_enhancement(dce, t1, floor=10.0)
    assert out[0, 0] == pytest.approx(50.0) and out[0, 1] == 0.0 and np.isnan(out[1]).all()
    assert case_title({"t2w": "/data/ProstateX-0001/t2w.nii.gz"}) == "case ProstateX-0001 (T2W: t2w.nii.gz)"
    assert case_title({}) == "your exam" and case_title(None, "x") == "x"


def test_a_long_header_is_wrapped_inside_the_figure_and_the_banner_and_panels_move_down():
    """A provenance with a missing-input note is longer than the figure is wide: the SYNTHETIC header wraps onto
    more lines (every one inside the figure), and the warning banner and the panels start below it."""
    from DCEDiffLib.evaluation import report_figure
    from DCEDiffLib.pipeline import missing_inputs_note, provenance_text

    provenance = provenance_text({"dcediff_version": "0.1.0", "model": "dcediff_cpu_phantom", "sampler": "dpmpp",
                                  "steps": 1, "seed": 0, "samples": 1, "missing_inputs": ["pd"]})
    assert missing_inputs_note(["pd"]) in provenance  # the long case of a real run
    warning = "inputs OUT of the model's training distribution (score 2.00 > 1): " + "a reason; " * 40
    short = report_figure.report_figure([_report_rows()], provenance="generated by DCEDiff (tiny)", warning=warning)
    long = report_figure.report_figure([_report_rows()], provenance=provenance, warning=warning)
    header, banner = long.texts[0], long.texts[1]
    assert header.get_text().count("\n") >= 1 and "WITHOUT" in header.get_text()
    assert " ".join(header.get_text().split()) == " ".join(provenance.split())  # nothing lost in the wrap
    renderer = long.canvas.get_renderer()
    figure_box = long.bbox
    for text in (header, banner):
        box = text.get_window_extent(renderer)
        assert box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1, text.get_text()[:40]
    assert header.get_window_extent(renderer).y0 > banner.get_window_extent(renderer).y1  # no overlap
    top_panel = max(ax.get_window_extent(renderer).y1 for ax in long.axes)
    assert banner.get_window_extent(renderer).y0 > top_panel  # the panels start below the banner
    assert long.get_size_inches()[1] > short.get_size_inches()[1]  # the extra header line got its own height


def test_paired_bootstrap_interval_is_the_2_5_and_97_5_percentiles_of_the_resampled_means():
    from DCEDiffLib.evaluation.protocol import paired_bootstrap

    # Differences 0, 1, 2: a resample of 3 patients has mean 0 with probability (1/3)^3 = 3.7 % and mean 2 with
    # 3.7 %, both above 2.5 %, so the 95 % percentile interval is exactly [0, 2] (a 90 % one would be [1/3, 5/3]).
    result = paired_bootstrap([0.0, 1.0, 2.0], [0.0, 0.0, 0.0])
    assert result["mean"] == pytest.approx(1.0) and result["n"] == 3
    assert result["ci95"] == [0.0, 2.0]


def test_the_report_banner_says_every_warning_and_a_failed_registration_check_is_one_of_them():
    import dataclasses

    from DCEDiffLib.evaluation import report_figure
    from DCEDiffLib.pipeline import registration_warning
    from DCEDiffLib.registration import identity_result

    agreed = dataclasses.replace(identity_result("adc", "test"), self_check={"agrees": True, "summary": "agrees"})
    failed = dataclasses.replace(identity_result("pd", "test"), self_check={"agrees": False, "summary": "DISAGREES"})
    unchecked = identity_result("t1pre", "registration skipped")
    assert registration_warning({"adc": agreed, "t1pre": unchecked}) is None
    line = registration_warning({"pd": failed, "adc": agreed, "t1pre": unchecked})
    named = line.split(":")[0]  # the series named before the explanation
    assert "proton density" in named and "ADC" not in named and "T1" not in named
    ood = "inputs OUT of the model's training distribution (score 2.00 > 1): the data domain is phantom only; " \
          + "a reason; " * 12 + "the exam is not validated"
    one = report_figure.report_figure([_report_rows()], warning=ood)
    both = report_figure.report_figure([_report_rows()], warning=[ood, None, line])
    banner = " ".join(both.texts[1].get_text().split())
    assert "is not validated" in banner and "proton density" in banner and "…" not in banner  # nothing cut
    if both.texts[1].get_text().count("\n") + 1 > 2:  # lines beyond two get their own height
        assert both.get_size_inches()[1] > one.get_size_inches()[1]
    renderer = both.canvas.get_renderer()
    top_panel = max(ax.get_window_extent(renderer).y1 for ax in both.axes)
    assert both.texts[1].get_window_extent(renderer).y0 > top_panel


def test_no_finite_value_with_undefined_cases_is_not_called_perfect():
    """format_stat: '∞' only when every case was perfect; with some cases undefined (None) and the rest perfect
    there is no mean to show, and the table must not claim a perfect result: 'undefined' (with the counts)."""
    from DCEDiffLib.evaluation.tables import format_stat, summarize

    stat = summarize([float("inf"), None, float("inf")])
    assert (stat["n"], stat["n_inf"], stat["n_none"]) == (0, 2, 1)
    text = format_stat(stat)
    assert not text.startswith("∞"), text
    assert text.startswith("undefined")
    assert format_stat(summarize([float("inf"), float("inf")])) == "∞"


def test_scale_bar_uses_the_horizontal_pixel_size(tmp_path):
    """The scale bar is horizontal, so its length in pixels is mm / (pixel size along i, the displayed x axis).
    Pixels 0.5 mm wide (i) and 2 mm high (j), 200 wide: a quarter of the width is 25 mm, so the bar is 20 mm,
    40 pixels long."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from DCEDiffLib.evaluation.report_figure import _annotate, orientation

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((100, 200)))
    _annotate(ax, orientation(None), (0.5, 2.0, 3.0), (1, 100, 200))
    texts = [t.get_text() for t in ax.texts]
    assert "20 mm" in texts, texts
    (line,) = ax.lines
    xs = line.get_xdata()
    assert abs(xs[1] - xs[0]) == pytest.approx(40.0)
    plt.close(fig)


def test_format_value_writes_one_value_with_metrics_md_digits_and_names_what_it_cannot_write():
    """format_value (the Slicer metrics table's text): metrics.md's digits per metric, the same text a one-case
    metrics.md cell starts with; '∞' for a perfect PSNR (float or JSON "inf"); 'undefined' for None and NaN, never
    'nan'; a metric without a precision or a value that is no number is refused by name."""
    from DCEDiffLib.evaluation.tables import format_value, markdown_text, summarize

    assert [format_value(v, m) for v, m in ((27.123456, "psnr"), (0.8345121, "ssim"), (0.03123456, "mae"),
                                            (0.834512, "pearson"), (-1.5, "cnr"))] == \
        ["27.12", "0.835", "0.0312", "0.835", "-1.50"]
    assert format_value(float("inf"), "psnr") == format_value("inf", "psnr") == "∞"
    assert format_value("-inf", "psnr") == "-∞"
    assert format_value(None, "pearson") == format_value(float("nan"), "pearson") == "undefined"
    assert format_value(np.float32(0.5), "ssim") == "0.500"
    summary = {"model": {"n_cases": 1, "early": {"whole": {m: summarize([v]) for m, v in
                                                           (("psnr", 27.123456), ("ssim", 0.8345121),
                                                            ("mae", 0.03123456))}}}}
    md = markdown_text(summary)
    assert "| model | 27.12 (1 case) | 0.835 (1 case) | 0.0312 (1 case) |" in md
    with pytest.raises(InputError, match="'fid' has no display precision; expected one of cnr, mae"):
        format_value(1.0, "fid")
    with pytest.raises(InputError, match="ssim value 'high' is not a number"):
        format_value("high", "ssim")
    with pytest.raises(InputError, match="psnr value True is not a number"):
        format_value(True, "psnr")


def test_report_words_demo_line_and_model_card_show_the_value_as_metrics_md_and_the_slicer_table_do():
    """One value, one text: the prostate r 0.8267 that metrics.md and the Slicer metrics table write as 0.827
    (``format_value``) is 0.827 in report.png's words too (was 0.83), the demo's MAE 0.03123 is 0.0312 (was 0.031),
    a model card's PSNR 27.123 / SSIM 0.8345 read 27.12 dB / 0.835 under the model field (were 27.1 / 0.83), and
    evaluate's console summary has metrics.md's digits per metric (were 3 decimals for all). synthesize's printed
    JSON keeps numbers (a script may read it). The model card line: test_slicer_process."""
    from DCEDiffLib.commands.demo import metric_line
    from DCEDiffLib.evaluation.report_figure import metric_words
    from DCEDiffLib.evaluation.tables import format_value, markdown_text, summarize
    from DCEDiffLib.evaluation_runner import _headline

    whole = {"psnr": 27.123456, "ssim": 0.8345121, "mae": 0.03123456}
    metrics = {"early": {"whole": whole, "enhancement": {"prostate": {"pearson": 0.8267}}}}
    summary = {"model": {"n_cases": 1, "early": {"whole": {m: summarize([v]) for m, v in whole.items()},
                                                 "enhancement": {"prostate": {"pearson": summarize([0.8267])}}}}}
    md = markdown_text(summary)
    assert "| model | 27.12 (1 case) | 0.835 (1 case) | 0.0312 (1 case) |" in md
    assert md.count("0.827 (1 case)") == 1  # metrics.md's enh. r (prostate) cell
    assert metric_words(metrics, "early") == (f"PSNR {format_value(27.123456, 'psnr')} dB · SSIM 0.835 · "
                                              f"prostate enh. r {format_value(0.8267, 'pearson')}")
    assert metric_words(metrics, "early").endswith("prostate enh. r 0.827")
    assert metric_line(whole) == "PSNR 27.12 dB, SSIM 0.835, MAE 0.0312"
    assert metric_line({"psnr": "inf", "ssim": None}) == "PSNR ∞ dB, SSIM undefined, MAE undefined"
    assert _headline(summary)["model"]["early_psnr"] == "27.12 (1 case)"
    assert _headline(summary)["model"]["early_mae"] == "0.0312 (1 case)"
