"""metrics.md and metrics.csv at their rules (found by a mutation audit): every column of every table holds the
metric its header names, for the target of its row (no early/late, synthetic/acquired or prostate/lesion swap), and
metrics.csv has one row per enhancement metric evaluate_case reports. One made-up case whose every value is
distinct, so a value found in the wrong column names the swap."""

from DCEDiffLib.evaluation.tables import aggregate, csv_text, markdown_text


def _case() -> dict:
    """One case result: each (target, section, metric) its own value, early and late apart."""
    def target(offset: float) -> dict:
        return {"whole": {"psnr": 31.0 + offset, "ssim": 0.811 + offset / 100, "mae": 0.0123 + offset / 1000},
                "body": {"psnr": 29.0 + offset, "ssim": 0.722 + offset / 100, "mae": 0.0211 + offset / 1000},
                "prostate": {"psnr": 27.0 + offset, "ssim": 0.633 + offset / 100, "mae": 0.0345 + offset / 1000},
                "enhancement": {"body": {"mae": 0.0456 + offset / 1000, "psnr": 23.0 + offset,
                                         "pearson": 0.544 + offset / 100, "mean_ratio": 0.91 + offset / 100},
                                "prostate": {"mae": 0.05, "psnr": 21.0, "pearson": 0.455 + offset / 100,
                                             "mean_ratio": 0.88},
                                "lesion": {"mae": 0.06, "psnr": 19.0, "pearson": 0.366 + offset / 100,
                                           "mean_ratio": 0.77}},
                "lesions": {"summary": {"n_lesions": 2.0 + offset, "cnr_synthetic": 3.5 + offset,
                                        "cnr_acquired": 5.25 + offset, "cnr_relative_error": -0.33 - offset / 100,
                                        "cnr_abs_relative_error": 0.44 + offset / 100,
                                        "fraction_above_gland_median_synthetic": 0.25 + offset / 100,
                                        "fraction_above_gland_median_acquired": 0.75 + offset / 100,
                                        "above_gland_median_agreement": 0.5 + offset / 100}}}
    return {"early": target(0.0), "late": target(4.0), "case": "c1"}


def _tables(markdown: str) -> dict:
    """Section title → list of {header: cell} rows of its table."""
    tables, title, header = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            else:
                tables.setdefault(title, []).append(dict(zip(header, cells)))
    return tables


def test_every_markdown_column_holds_the_metric_its_header_names_for_its_rows_target():
    """metrics.md: the paper's table has 'early PSNR (dB) … late MAE' columns, the others one row per method and
    target; one case, so each cell is the value with '(1 case)'."""
    case = _case()
    tables = _tables(markdown_text({"model": aggregate([case])}))

    def cell(value: float, digits: int) -> str:
        return f"{value:.{digits}f} (1 case)"

    (whole,) = tables["Whole working grid (the paper's table)"]
    for t in ("early", "late"):
        values = case[t]["whole"]
        assert whole[f"{t} PSNR (dB)"] == cell(values["psnr"], 2)
        assert whole[f"{t} SSIM"] == cell(values["ssim"], 3)
        assert whole[f"{t} MAE"] == cell(values["mae"], 4)
    regions = {row["target"]: row for row in tables["Body, prostate and enhancement (what synthesis adds)"]}
    lesions = {row["target"]: row for row in tables["Lesion conspicuity"]}
    for t in ("early", "late"):
        values, row = case[t], regions[t]
        assert row["body PSNR"] == cell(values["body"]["psnr"], 2)
        assert row["body SSIM"] == cell(values["body"]["ssim"], 3)
        assert row["prostate PSNR"] == cell(values["prostate"]["psnr"], 2)
        assert row["prostate SSIM"] == cell(values["prostate"]["ssim"], 3)
        assert row["prostate MAE"] == cell(values["prostate"]["mae"], 4)
        enhancement = values["enhancement"]
        assert row["enh. MAE (body)"] == cell(enhancement["body"]["mae"], 4)
        assert row["enh. PSNR (body)"] == cell(enhancement["body"]["psnr"], 2)
        for region in ("body", "prostate", "lesion"):
            assert row[f"enh. r ({region})"] == cell(enhancement[region]["pearson"], 3), region
        summary, row = values["lesions"]["summary"], lesions[t]
        assert row["lesions/case"] == cell(summary["n_lesions"], 1)
        assert row["CNR synthetic"] == cell(summary["cnr_synthetic"], 2)
        assert row["CNR acquired"] == cell(summary["cnr_acquired"], 2)
        assert row["CNR rel. error"] == cell(summary["cnr_relative_error"], 2)
        assert row["abs. CNR rel. error"] == cell(summary["cnr_abs_relative_error"], 2)
        assert row["above gland median (synthetic)"] == cell(summary["fraction_above_gland_median_synthetic"], 2)
        assert row["above gland median (acquired)"] == cell(summary["fraction_above_gland_median_acquired"], 2)
        assert row["agreement"] == cell(summary["above_gland_median_agreement"], 2)


def test_metrics_csv_has_a_row_for_every_enhancement_metric_of_every_region():
    """metrics.csv: 'one row per method × case × target × region × metric'; the enhancement section's metrics
    (mae, psnr, pearson, mean_ratio; METRIC_LEGEND's enh. MAE/PSNR, enh. r, enh. ratio) each get theirs, with
    their own value."""
    import csv
    import io

    case = _case()
    rows = list(csv.DictReader(io.StringIO(csv_text({"model": [case]}))))
    enhancement = {(r["target"], r["region"], r["metric"]): float(r["value"]) for r in rows
                   if r["group"] == "enhancement"}
    expected = {(t, region, metric): value for t in ("early", "late")
                for region, values in case[t]["enhancement"].items() for metric, value in values.items()}
    assert enhancement == expected
