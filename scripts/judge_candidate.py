"""Judge a candidate against the shipped model on validation patients, by the rule docs/model_quality.md has used
since its thirty-second step (written before each run; paired per patient, mean networks alone):

- lesion enhancement r: mean paired gain over patients, averaged over early and late, ≥ +0.03 (``--min-lesion-gain``
  sets another bar, e.g. −0.01 for a candidate aimed elsewhere that the lesions must not pay for);
- prostate enhancement r: the same, ≥ −0.01;
- whole-grid PSNR: mean paired difference ≥ −0.2 dB in each phase;
- early lesion CNR sign: the share of lesions with the acquired sign not more than 0.05 below the reference's.

With ``--by-family`` it also judges each phantom family (anatomy family and domain, read from each patient's case.json
under the ``meta.data`` folder of its metrics.json) by the condition the fresh sets are shipped on since the
forty-fourth step: prostate r over both phases ≥ −0.01 and PSNR ≥ −0.2 dB in each phase, in every family. (The
forty-fifth step passed the pooled rule on validation while its real-anatomy family lost 0.018 prostate r there,
and then failed that condition on its fresh set.)

Usage: python scripts/judge_candidate.py METRICS_JSON [METRICS_JSON ...] [--candidate model] [--reference shipped]
       [--min-lesion-gain 0.03] [--by-family]
  (several metrics.json of `dcediff evaluate` pool their patients; the names are methods of their "cases")
Prints the four measurements (paired means with 95 % bootstrap intervals over patients) and the verdict; exit
status 0 whether it passes or not (2 on bad input).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_evaluation import _get, _num, lesion_agreement  # noqa: E402

PHASES = ("early", "late")
MIN_LESION_R_GAIN = 0.03
MIN_PROSTATE_R_GAIN = -0.01
MIN_PSNR_DIFFERENCE_DB = -0.2
MAX_CNR_SIGN_LOSS = 0.05


def paired_differences(candidate_rows, reference_rows, phase, *path):
    """Candidate − reference per patient for one measurement (the patients where both have it)."""
    differences = []
    for c, r in zip(candidate_rows, reference_rows):
        a, b = _num(_get(c, phase, *path)), _num(_get(r, phase, *path))
        if a is not None and b is not None:
            differences.append(a - b)
    return np.asarray(differences, float)


def bootstrap_interval(differences, resamples: int = 4000, seed: int = 0):
    """95 % percentile bootstrap interval of the mean over patients (a fixed seed: the same input, the same
    interval)."""
    differences = np.asarray(differences, float)
    if differences.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, differences.size, (resamples, differences.size))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def judge(documents, candidate="model", reference="shipped", min_lesion_gain: float = MIN_LESION_R_GAIN) -> dict:
    """The rule's four measurements and verdicts over the pooled patients of ``documents`` (metrics.json dicts);
    ``min_lesion_gain`` is the bar of the lesion r gain (averaged over the phases)."""
    cand_rows, ref_rows = [], []
    for document in documents:
        cases = document["cases"]
        for name in (candidate, reference):
            if name not in cases:
                raise KeyError(f"method {name!r} not in this metrics.json; it has {sorted(cases)}")
        if len(cases[candidate]) != len(cases[reference]):
            raise ValueError(f"{candidate} and {reference} were scored on different patients")
        cand_rows += cases[candidate]
        ref_rows += cases[reference]
    # each measurement's per-patient differences once; its mean and its interval both come from them
    differences = {name: {p: paired_differences(cand_rows, ref_rows, p, *path) for p in PHASES}
                   for name, path in (("lesion_r", ("enhancement", "lesion", "pearson")),
                                      ("prostate_r", ("enhancement", "prostate", "pearson")),
                                      ("psnr_db", ("whole", "psnr")))}
    means = {name: [float(d[p].mean()) if d[p].size else None for p in PHASES] for name, d in differences.items()}
    lesion, prostate, psnr = means["lesion_r"], means["prostate_r"], means["psnr_db"]
    intervals = {name: {p: bootstrap_interval(d[p]) for p in PHASES} for name, d in differences.items()}
    sign_c, _, n = lesion_agreement(cand_rows, "early")
    sign_r, _, _ = lesion_agreement(ref_rows, "early")
    result = {
        "patients": len(cand_rows), "lesions_early": n,
        "lesion_r": {"early": lesion[0], "late": lesion[1], "both": float(np.mean(lesion))},
        "prostate_r": {"early": prostate[0], "late": prostate[1], "both": float(np.mean(prostate))},
        "psnr_db": {"early": psnr[0], "late": psnr[1]},
        "early_cnr_sign": {"candidate": sign_c, "reference": sign_r,
                           "lesions_right": [round(sign_c * n), round(sign_r * n)]},
        "ci95": intervals,
    }
    result["verdicts"] = {
        "lesion_r": result["lesion_r"]["both"] >= min_lesion_gain,
        "prostate_r": result["prostate_r"]["both"] >= MIN_PROSTATE_R_GAIN,
        "psnr": min(psnr) >= MIN_PSNR_DIFFERENCE_DB,
        "early_cnr_sign": sign_c >= sign_r - MAX_CNR_SIGN_LOSS,
    }
    result["passes"] = all(result["verdicts"].values())
    return result


def family_of_case(data_dir: Path, case: str) -> str:
    """"<anatomy family> <domain>" of one phantom patient, from its case.json ("unknown" where it has none)."""
    path = Path(data_dir) / case / "case.json"
    if not path.is_file():
        return "unknown"
    params = json.loads(path.read_text(encoding="utf-8"))
    return f"{params.get('anatomy_family', 'procedural')} {params.get('domain', '?')}"


def judge_families(documents, families, candidate="model", reference="shipped") -> dict:
    """The fresh sets' ship condition per family: {family: {"patients", "prostate_r", "psnr_db", "passes"}}.

    ``families``: one list per document, the family of each of its rows (in the order of ``cases[candidate]``)."""
    grouped: dict = {}
    for document, row_families in zip(documents, families):
        cases = document["cases"]
        for c, r, family in zip(cases[candidate], cases[reference], row_families):
            pair = grouped.setdefault(family, ([], []))
            pair[0].append(c)
            pair[1].append(r)
    result = {}
    for family, (cand_rows, ref_rows) in sorted(grouped.items()):
        prostate = [paired_differences(cand_rows, ref_rows, p, "enhancement", "prostate", "pearson") for p in PHASES]
        psnr = [paired_differences(cand_rows, ref_rows, p, "whole", "psnr") for p in PHASES]
        prostate_both = float(np.mean([d.mean() for d in prostate if d.size])) if any(d.size for d in prostate) \
            else None
        psnr_means = [float(d.mean()) if d.size else None for d in psnr]
        passes = (prostate_both is None or prostate_both >= MIN_PROSTATE_R_GAIN) and \
            all(v is None or v >= MIN_PSNR_DIFFERENCE_DB for v in psnr_means)
        result[family] = {"patients": len(cand_rows), "prostate_r": prostate_both, "psnr_db": psnr_means,
                          "passes": passes}
    return result


def _families_of(document, candidate="model") -> list:
    """The family of each of ``candidate``'s rows in one metrics.json (the rows judge_families pairs)."""
    data = document.get("meta", {}).get("data")
    if not data:
        raise ValueError("--by-family needs meta.data (the phantom folder) in every metrics.json")
    return [family_of_case(Path(data), row["case"]) for row in document["cases"][candidate]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", nargs="+", type=Path)
    parser.add_argument("--candidate", default="model")
    parser.add_argument("--reference", default="shipped")
    parser.add_argument("--min-lesion-gain", type=float, default=MIN_LESION_R_GAIN,
                        help="bar of the lesion r gain over both phases (default %(default)s)")
    parser.add_argument("--by-family", action="store_true",
                        help="also judge each phantom family by the fresh sets' condition (prostate r, PSNR)")
    args = parser.parse_args()
    try:
        documents = [json.loads(p.read_text(encoding="utf-8")) for p in args.metrics]
        result = judge(documents, args.candidate, args.reference, args.min_lesion_gain)
        by_family = judge_families(documents, [_families_of(d, args.candidate) for d in documents], args.candidate,
                                   args.reference) if args.by_family else None
    except (OSError, ValueError, KeyError) as error:
        print(f"judge_candidate: {error}", file=sys.stderr)
        return 2
    v, lr, pr, ps, cnr = result["verdicts"], result["lesion_r"], result["prostate_r"], result["psnr_db"], \
        result["early_cnr_sign"]
    mark = {True: "pass", False: "FAIL"}
    print(f"{args.candidate} − {args.reference}, {result['patients']} patients:")
    ci = result["ci95"]

    def interval(name, phase, digits):
        low_high = ci[name][phase]
        return "" if low_high is None else f" [{low_high[0]:+.{digits}f}, {low_high[1]:+.{digits}f}]"

    print(f"  lesion r    (bar {args.min_lesion_gain:+.3f})  {lr['early']:+.3f}{interval('lesion_r', 'early', 3)} / "
          f"{lr['late']:+.3f}{interval('lesion_r', 'late', 3)}, both {lr['both']:+.4f}  {mark[v['lesion_r']]}")
    print(f"  prostate r  {pr['early']:+.3f}{interval('prostate_r', 'early', 3)} / {pr['late']:+.3f}"
          f"{interval('prostate_r', 'late', 3)}, both {pr['both']:+.4f}  {mark[v['prostate_r']]}")
    print(f"  PSNR        {ps['early']:+.2f}{interval('psnr_db', 'early', 2)} / {ps['late']:+.2f}"
          f"{interval('psnr_db', 'late', 2)} dB  {mark[v['psnr']]}")
    print("  (95 % bootstrap intervals over patients)")
    right = cnr["lesions_right"]
    print(f"  early CNR sign {right[0]} against {right[1]} of {result['lesions_early']} "
          f"({cnr['candidate'] - cnr['reference']:+.3f})  {mark[v['early_cnr_sign']]}")
    print("  passes the rule" if result["passes"] else "  does not pass the rule")
    if by_family is not None:
        print("  by family (prostate r over both phases ≥ −0.01, PSNR ≥ −0.2 dB in each phase):")
        for family, f in by_family.items():
            prostate = "–" if f["prostate_r"] is None else f"{f['prostate_r']:+.4f}"
            psnr = " / ".join("–" if v is None else f"{v:+.2f}" for v in f["psnr_db"])
            print(f"    {family} ({f['patients']}): prostate r {prostate}, PSNR {psnr} dB  {mark[f['passes']]}")
        every = all(f["passes"] for f in by_family.values())
        print("  every family passes" if every else "  a family does not pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
