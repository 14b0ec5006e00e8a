#!/usr/bin/env python3
"""Where does the prostate r go? The gland's enhancement split into its zones, for the model and for the inputs.

The prostate r of ``dcediff evaluate`` is one Pearson r over the gland (PZ + TZ + lesions). It mixes two things: the
contrast *between* the zones (the PZ enhances less than the TZ, say) and the pattern *within* each zone (texture,
the coil's receive field, nodules). Per case and target this script prints, on the working grid, enhancement =
image − T1-pre on the acquired DCE's scale (the evaluation's identity mapping):

- the prostate r of the model (as the evaluation computes it, up to the body mask);
- ``zone share``: the r between the acquired enhancement and its own zone means (PZ, TZ, lesion) — how much of the
  gland's pattern the zones alone carry; low means the within-zone pattern decides the prostate r;
- per zone, the model's r inside that zone, and an *oracle* linear r: a least-squares fit of the acquired
  enhancement on the four inputs (normalised, each at three in-plane smoothings) fitted on the same patient's
  acquired enhancement — an upper bound for any linear read-out of the inputs, not a predictor (it sees the answer).

Medians per anatomy family (procedural / prostatex) close the output. Use validation cases.

    .venv/bin/python scripts/prostate_r_by_zone.py MODEL --data DATA_DIR --cases case_400 ... [--cache DIR]
        [--json OUT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_case_options beside it

ZONES = ("peripheral_zone", "transition_zone", "lesion")
SMOOTHING_PIXELS = (0.0, 1.5, 3.0)
MIN_ZONE_VOXELS = 30


def _r(x: np.ndarray, y: np.ndarray) -> float:
    """The evaluation's Pearson r (its rule for a constant map), NaN where undefined so that medians skip it."""
    from DCEDiffLib.evaluation.enhancement import pearson

    r, _ = pearson(x, y)
    return float("nan") if r is None else float(r)


def smoothed_inputs(inputs: np.ndarray) -> np.ndarray:
    """The oracle's features: each of ``inputs`` (C, K, H, W) smoothed in-plane at :data:`SMOOTHING_PIXELS`,
    (C × 3, K, H, W). Computed once per case: they depend on neither the zone nor the target."""
    from scipy import ndimage

    return np.stack([ndimage.gaussian_filter(channel, (0, sigma, sigma)) if sigma else channel
                     for channel in inputs for sigma in SMOOTHING_PIXELS])


def oracle_linear_r(features: np.ndarray, acquired: np.ndarray, mask: np.ndarray) -> float:
    """r of the least-squares fit of ``acquired`` on ``features`` (:func:`smoothed_inputs`) plus a constant inside
    ``mask`` — fitted on the same voxels it is scored on (an upper bound)."""
    design = np.stack([np.ones(int(mask.sum()))] + [f[mask] for f in features], axis=1).astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(design, acquired[mask], rcond=None)
    return _r(design @ coefficients, acquired[mask])


def zone_decomposition(synthetic: np.ndarray, acquired: np.ndarray, labels: np.ndarray, legend: Dict[str, int],
                       features: np.ndarray) -> dict:
    """Split one target's gland enhancement by zone (see the module docstring). ``synthetic``/``acquired``:
    (K, H, W) enhancement maps; ``features``: :func:`smoothed_inputs` of the (C, K, H, W) conditions. Zones under
    :data:`MIN_ZONE_VOXELS` are left out of the per-zone rows (they still count in the gland)."""
    present = [z for z in ZONES if z in legend]
    gland = np.isin(labels, [legend[z] for z in present])
    zone_means = np.zeros_like(acquired, dtype=np.float64)
    zones = {}
    for zone in present:
        mask = labels == legend[zone]
        if not mask.any():
            continue
        zone_means[mask] = acquired[mask].mean()
        if mask.sum() >= MIN_ZONE_VOXELS:
            zones[zone] = {"voxels": int(mask.sum()), "model_r": _r(synthetic[mask], acquired[mask]),
                           "oracle_linear_r": oracle_linear_r(features, acquired, mask),
                           "acquired_std": float(acquired[mask].std()), "synthetic_std": float(synthetic[mask].std())}
    return {"prostate_r": _r(synthetic[gland], acquired[gland]),
            "zone_share_r": _r(zone_means[gland], acquired[gland]), "zones": zones}


def _family(case_dir: Path) -> str:
    try:
        return json.loads((case_dir / "case.json").read_text(encoding="utf-8")).get("anatomy_family") or "procedural"
    except (OSError, ValueError):
        return "unknown"


def _medians(rows: Sequence[dict]) -> str:
    def med(values):
        values = [v for v in values if v == v]
        return f"{np.median(values):.2f}" if values else "-"
    parts = [f"prostate r {med([r['prostate_r'] for r in rows])}",
             f"zone share {med([r['zone_share_r'] for r in rows])}"]
    for zone in ZONES[:2]:
        inside = [r["zones"][zone] for r in rows if zone in r["zones"]]
        parts.append(f"{zone}: model {med([z['model_r'] for z in inside])}, oracle-linear "
                     f"{med([z['oracle_linear_r'] for z in inside])}")
    return "; ".join(parts)


def main(argv=None) -> int:
    from model_case_options import model_on_cases_parser

    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.evaluation_runner import model_conditions
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.training.case_data import load_case

    args = model_on_cases_parser(__doc__).parse_args(argv)

    model = load_model(args.model)
    targets = model.card["targets"]
    rows = []
    for name in args.cases:
        case = load_case(args.data / name, args.cache)
        if case.labels is None:
            continue
        result = synthesize_volume(model, model_conditions(model, case), samples=1, seed=0, device="cpu",
                                   adc_norm=case.norm.get("adc"))
        t1pre = case.raw("t1pre").astype(np.float64)
        family = _family(args.data / name)
        features = smoothed_inputs(case.conditions)
        for i, target in enumerate(targets):
            synthetic = denormalize(result.mean[i], case.norm[target]).astype(np.float64) - t1pre
            acquired = case.raw(target).astype(np.float64) - t1pre
            row = {"case": name, "family": family, "target": target,
                   **zone_decomposition(synthetic, acquired, case.labels, case.legend, features)}
            rows.append(row)
            zones = " | ".join(f"{z[:2]} {v['voxels']}: model {v['model_r']:.2f} oracle-linear "
                               f"{v['oracle_linear_r']:.2f} (std acq {v['acquired_std']:.0f}, syn "
                               f"{v['synthetic_std']:.0f})" for z, v in row["zones"].items())
            print(f"{name} [{family}] {target}: prostate r {row['prostate_r']:.2f}, zone share "
                  f"{row['zone_share_r']:.2f}; {zones}", flush=True)
    for family in sorted({r["family"] for r in rows}):
        for target in targets:
            chosen = [r for r in rows if r["family"] == family and r["target"] == target]
            print(f"{family} {target} ({len(chosen)} cases, medians): {_medians(chosen)}")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "rows": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
