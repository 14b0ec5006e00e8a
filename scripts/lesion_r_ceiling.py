#!/usr/bin/env python3
"""How high can the lesion r go? The evaluation's enhancement r of a perfect model, one that draws the noise-free DCE.

The goal's lesion r is the Pearson r over a patient's lesion voxels between the synthetic and the acquired
enhancement (image − mapped T1-pre). The acquired early/late images carry the scanner's Rician noise, which no model
can predict from the inputs. This script regenerates each phantom case of a data folder from its case.json with the
noise of the generator switched off, puts the noise-free early/late images into a copy of the case folder (the
inputs and the T1-pre stay the acquired, noisy ones, so the working grid and the T1-pre of the metric are the same)
and scores them with the evaluation's own code (`evaluate_case`) as if they were a model's output. The result is the
ceiling the phantom's noise sets on each metric; the script prints the lesion r per patient, grouped as
`lesion_r_by_group.py` groups them, and the medians. It uses no model, so it may read any data folder, test sets
included, without scoring a model on them.

``--without-hidden-texture`` also switches off the part of each tissue's Ktrans texture that no input shows (the
independent field of tissues.TEXTURES; the shared field also shapes T2, ADC or PD): the r of a model that knows
every voxel's tissue and the visible part of its texture — an upper bound on what the inputs allow, since they show
even that part only through their own noise and resolution.

``--population-kinetics`` (with the above) also sets every normal tissue's kinetic values (Ktrans, ve, vp), which the
phantom draws per patient and no input shows, to the middle of their population range; the lesions keep their own
(partly shown by the ADC): the r of a model that knows the anatomy and the lesion but not this patient's gland.

``--lesion-kinetics-from-inputs`` (with both above) also replaces each lesion's kinetic values by their expectation
given what the inputs show of the lesion — its ADC and T2 — over the phantom's lesion population (both kinds at
their prior 0.7 / 0.3, the zone at its population middle; a nearest-neighbour average over Monte-Carlo draws of
``tissues.sample_lesion_tissue``): the r and the lesion CNR of a model that reads the lesion's ADC and T2 exactly and
draws the best guess of its enhancement — what the inputs allow at best, the kind included.

``--with-lesion-free`` also scores the patients without a lesion (group "no lesion": prostate r only), whom the
lesion r has no use for but the prostate r's ceiling does: a gland with no lesion and few nodules has little pattern
to follow.

    .venv/bin/python scripts/lesion_r_ceiling.py --data runs/data_physiology --cases case_400 ... [--json OUT]
        [--without-hidden-texture [--population-kinetics [--lesion-kinetics-from-inputs]]] [--with-lesion-free]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):  # the engine, and lesion_r_by_group / summarize_evaluation beside this script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def visible_textures() -> dict:
    """tissues.TEXTURES with the independent-field coefficient of Ktrans set to 0 (the random draws stay the same:
    the fields are drawn whatever their coefficients)."""
    from DCEDiffLib.phantom.tissues import TEXTURES

    out = {}
    for name, (coefficients, length) in TEXTURES.items():
        coefficients = dict(coefficients)
        if "ktrans" in coefficients:
            shared, _, patch = coefficients["ktrans"]
            coefficients["ktrans"] = (shared, 0.0, patch)
        out[name] = (coefficients, length)
    return out


KINETIC_VALUES = ("ktrans", "ve", "vpa", "vpv")


def set_population_kinetics(name: str, tissue) -> None:
    """Set ``tissue``'s kinetic values (those drawn from a range in tissues.TISSUE_RANGES[name]) to the middle of
    their range, in place."""
    from DCEDiffLib.phantom.tissues import TISSUE_RANGES

    for key in KINETIC_VALUES:
        spec = TISSUE_RANGES.get(name, {}).get(key)
        if isinstance(spec, tuple):
            tissue.values[key] = 0.5 * (spec[0] + spec[1])


def population_kinetics(draw):
    """``sample_tissues`` with each tissue's kinetic values set to the middle of their range afterwards (the random
    draws stay the same)."""
    def sample(rng):
        tissues = draw(rng)
        for name, tissue in tissues.items():
            set_population_kinetics(name, tissue)
        return tissues
    return sample


LESION_KIND_PRIOR = 0.7      # anatomy.place_lesions: textbook with this probability, else less enhancing
NEIGHBOURS = 50


class LesionKineticsFromInputs:
    """E[(ktrans, ve, vpa) | ADC, T2] of a lesion, per zone, by a nearest-neighbour average over ``draws`` Monte-Carlo
    lesions (features scaled by their within-kind scatter: ADC 60, T2 5 ms)."""

    def __init__(self, draws: int = 4000, seed: int = 0):
        from DCEDiffLib.phantom.tissues import LESION_KINDS, sample_lesion_tissue, sample_tissues

        rng = np.random.default_rng(seed)
        zones = sample_tissues(rng)
        self.table = {}
        for zone_name in ("peripheral_zone", "transition_zone"):
            zone = zones[zone_name]
            set_population_kinetics(zone_name, zone)
            features, kinetics = [], []
            for _ in range(draws):
                kind = LESION_KINDS[0] if rng.uniform() < LESION_KIND_PRIOR else LESION_KINDS[1]
                tissue, info = sample_lesion_tissue(rng, "lesion", kind, zone)
                features.append((info["adc"] / 60.0, info["t2_ms"] / 5.0))
                kinetics.append([tissue.values[k] for k in ("ktrans", "ve", "vpa")])
            self.table[zone_name] = (np.array(features), np.array(kinetics))

    def expected(self, zone_name: str, adc: float, t2_ms: float) -> dict:
        """The expected ktrans, ve and vpa of a lesion in ``zone_name`` showing ``adc`` and ``t2_ms``."""
        features, kinetics = self.table[zone_name]
        distance = np.hypot(features[:, 0] - adc / 60.0, features[:, 1] - t2_ms / 5.0)
        nearest = np.argsort(distance)[:NEIGHBOURS]
        return dict(zip(("ktrans", "ve", "vpa"), kinetics[nearest].mean(axis=0).tolist()))


def lesion_kinetics_from_inputs(draw, table: LesionKineticsFromInputs):
    """``anatomy.sample_lesion_tissue`` with the lesion's kinetic values replaced by ``table``'s expectation (the
    random draws stay the same)."""
    def sample(rng, name, kind, zone):
        tissue, info = draw(rng, name, kind, zone)
        zone_name = zone.name if zone.name in table.table else "peripheral_zone"
        tissue.values.update(table.expected(zone_name, info["adc"], info["t2_ms"]))
        return tissue, info
    return sample


def noise_free_case(case_json: dict, hidden_texture: bool = True, patient_kinetics: bool = True,
                    lesion_table: "LesionKineticsFromInputs | None" = None):
    """The phantom case of ``case_json`` generated again with the Rician noise switched off (same seed, domain,
    anatomy family; every other draw is the same because the noise has its own random stream); without the hidden
    part of the Ktrans texture when ``hidden_texture`` is False, with population kinetics for the normal tissues when
    ``patient_kinetics`` is False."""
    from DCEDiffLib.phantom import anatomy, generator, imaging, tissues

    lesion_count = None  # the data folders of this project draw the count from the seed
    textures = tissues.TEXTURES if hidden_texture else visible_textures()
    draw = generator.sample_tissues if patient_kinetics else population_kinetics(generator.sample_tissues)
    lesion_draw = anatomy.sample_lesion_tissue
    if lesion_table is not None:
        lesion_draw = lesion_kinetics_from_inputs(lesion_draw, lesion_table)
    with mock.patch.object(imaging, "add_rician_noise", lambda signal, sigma, rng: signal), \
            mock.patch.dict(tissues.TEXTURES, textures), mock.patch.object(generator, "sample_tissues", draw), \
            mock.patch.object(anatomy, "sample_lesion_tissue", lesion_draw):
        return generator.generate_case(int(case_json["seed"]), case_json["domain"], case_json["case_id"],
                                       lesion_count=lesion_count, anatomy=case_json.get("anatomy_family",
                                                                                        "procedural"))


def check_same_patient(case_dir: Path, clean) -> None:
    """Refuse a case whose regenerated anatomy differs from the stored one (e.g. another generator version)."""
    import SimpleITK as sitk

    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "labels.nii.gz")))
    regenerated = sitk.GetArrayFromImage(clean.labels)
    if stored.shape != regenerated.shape or not np.array_equal(stored, regenerated):
        raise SystemExit(f"{case_dir.name}: the regenerated label map differs from the stored one "
                         "(another generator version?): no ceiling computed")


def ceiling_metrics(case_dir: Path, cache: Path | None, hidden_texture: bool = True,
                    patient_kinetics: bool = True, lesion_table: "LesionKineticsFromInputs | None" = None) -> dict:
    """evaluate_case's metrics of the noise-free early/late against the acquired case."""
    import SimpleITK as sitk

    from DCEDiffLib.evaluation.case_evaluation import evaluate_case
    from DCEDiffLib.evaluation_runner import SHORT, _spacing_kji
    from DCEDiffLib.modalities import TARGET_MODALITIES
    from DCEDiffLib.training.case_data import load_case

    case_json = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
    clean = noise_free_case(case_json, hidden_texture, patient_kinetics, lesion_table)
    check_same_patient(case_dir, clean)
    acquired_case = load_case(case_dir, cache)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / case_dir.name
        shutil.copytree(case_dir, copy, ignore=shutil.ignore_patterns("dce_series*"))
        for modality in TARGET_MODALITIES:
            target = copy / f"{modality}.nii.gz"
            if not target.is_file():
                raise SystemExit(f"{case_dir.name}: expected {target.name} (a NIfTI phantom case)")
            sitk.WriteImage(clean.images[modality], str(target))
        clean_case = load_case(copy, None)
    if not np.array_equal(clean_case.conditions, acquired_case.conditions):
        raise SystemExit(f"{case_dir.name}: the inputs on the working grid differ between the two loads")
    acquired = {SHORT[t]: acquired_case.raw(t) for t in TARGET_MODALITIES}
    noise_free = {SHORT[t]: clean_case.raw(t) for t in TARGET_MODALITIES}
    return evaluate_case(noise_free, acquired, acquired_case.raw("t1pre"), labels=acquired_case.labels,
                         legend=acquired_case.legend, spacing=_spacing_kji(acquired_case.grid))


NO_LESION = "no lesion"


def ceiling_row(name: str, case_json: dict, metrics: dict) -> dict:
    """One patient's line of the ceiling: its group (:func:`lesion_r_by_group.group_of`, or :data:`NO_LESION`),
    lesion voxels, and the noise-free lesion and prostate r and per-lesion CNRs of each target."""
    from lesion_r_by_group import group_of

    per_lesion = metrics["early"]["lesions"]["per_lesion"] if case_json.get("lesions") else []
    row = {"case": name, "group": group_of(case_json, per_lesion) if case_json.get("lesions") else NO_LESION,
           "lesion_voxels": sum(p["voxels"] for p in per_lesion)}
    for target in ("early", "late"):
        enhancement = metrics[target]["enhancement"]
        row[f"lesion_r_{target}"] = (enhancement.get("lesion") or {}).get("pearson")
        row[f"prostate_r_{target}"] = enhancement["prostate"]["pearson"]
        row[f"lesions_{target}"] = metrics[target]["lesions"]["per_lesion"] if per_lesion else []
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a phantom data folder (NIfTI cases)")
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--cache", type=Path, help="the evaluation's preprocessing cache, if any")
    parser.add_argument("--json", type=Path, help="write the per-patient values here")
    parser.add_argument("--without-hidden-texture", action="store_true",
                        help="also switch off the Ktrans texture that no input shows (see above)")
    parser.add_argument("--population-kinetics", action="store_true",
                        help="with --without-hidden-texture: normal tissues' kinetics at their population middle")
    parser.add_argument("--lesion-kinetics-from-inputs", action="store_true",
                        help="with --population-kinetics: each lesion's kinetics at their expectation given its "
                             "ADC and T2 (see above)")
    parser.add_argument("--with-lesion-free", action="store_true",
                        help="also score the patients without a lesion (group 'no lesion', prostate r only)")
    args = parser.parse_args(argv)
    if args.population_kinetics and not args.without_hidden_texture:
        parser.error("--population-kinetics goes with --without-hidden-texture")
    if args.lesion_kinetics_from_inputs and not args.population_kinetics:
        parser.error("--lesion-kinetics-from-inputs goes with --population-kinetics")
    lesion_table = LesionKineticsFromInputs() if args.lesion_kinetics_from_inputs else None
    from summarize_evaluation import lesion_agreement

    rows = []
    for name in args.cases:
        case_dir = args.data / name
        case_json = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
        if not case_json.get("lesions") and not args.with_lesion_free:
            continue
        metrics = ceiling_metrics(case_dir, args.cache, not args.without_hidden_texture, not args.population_kinetics,
                                  lesion_table)
        row = ceiling_row(name, case_json, metrics)
        rows.append(row)
        shown = {k: "–" if v is None else f"{v:.2f}" for k, v in row.items()
                 if k.startswith(("lesion_r_", "prostate_r_"))}
        print(f"{name} ({row['group']}, {row['lesion_voxels']} lesion voxels): lesion r "
              f"{shown['lesion_r_early']} / {shown['lesion_r_late']}, prostate r "
              f"{shown['prostate_r_early']} / {shown['prostate_r_late']}", flush=True)

    def median(values):
        values = [v for v in values if v is not None]
        return float(np.median(values)) if values else float("nan")

    groups = sorted({row["group"] for row in rows})
    for group in groups + ["all"]:
        members = [row for row in rows if group in ("all", row["group"])]
        print(f"{group}: {len(members)} patients, median noise-free lesion r early "
              f"{median(r['lesion_r_early'] for r in members):.2f} late {median(r['lesion_r_late'] for r in members):.2f}"
              f"; prostate r {median(r['prostate_r_early'] for r in members):.2f} / "
              f"{median(r['prostate_r_late'] for r in members):.2f}")
    for target in ("early", "late"):  # the evaluation's lesion CNR agreement (scripts/summarize_evaluation.py)
        sign, size, n = lesion_agreement([{target: {"lesions": {"per_lesion": r[f"lesions_{target}"]}}}
                                           for r in rows], target)
        if n:
            print(f"lesion CNR {target}: sign agrees {sign:.2f}, within 50 % {size:.2f} ({n} lesions)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
