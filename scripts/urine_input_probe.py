"""Which input makes the urine of a real exam enhance? Each input channel, inside the urine, set to the phantoms'.

On the real-exam stand-ins the model draws the urine (the bladder deeper than ``URINE_DEPTH_MM``) enhancing (RE
0.15–0.45 early) where it draws phantom urine at about 0 (docs/real_exams.md). This probe prints, per input channel,
the normalised median in the urine of the real exam beside the phantoms' (median and 10–90th percentiles over
``--cases``), then runs the model's mean network on the exam's conditions with one channel at a time replaced,
inside the urine only, by the phantoms' median, and prints the urine's median RE each time. The channel whose
replacement takes the RE to the phantoms' level is the one the model reads the difference from.

    .venv/bin/python scripts/urine_input_probe.py --patient 0001 --t1pre-stand-in vibe20 \\
        --data runs/data_val5 --cache runs/cache --cases case_8100 … [--model M]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from DCEDiffLib.phantom.realism import urine_mask as urine_of_bladder  # noqa: E402


def urine_mask(labels: np.ndarray, bladder_value: int, spacing_kji: Sequence[float]) -> np.ndarray:
    """The bladder label deeper than ``URINE_DEPTH_MM`` from its edge (its wall enhances; urine does not)."""
    return urine_of_bladder(labels == bladder_value, spacing_kji)


def with_channel_replaced(conditions: np.ndarray, channel: int, mask: np.ndarray, value: float) -> np.ndarray:
    """A copy of ``conditions`` (C, K, H, W) with ``channel`` set to ``value`` inside ``mask`` (K, H, W)."""
    out = conditions.copy()
    out[channel][mask] = value
    return out


def main(argv=None) -> int:
    import SimpleITK as sitk

    from DCEDiffLib.diffusion.model_files import load_model
    from DCEDiffLib.diffusion.synthesis import synthesize_volume
    from DCEDiffLib.normalization import denormalize
    from DCEDiffLib.phantom.anatomy import LABEL_LEGEND
    from DCEDiffLib.pipeline import condition_array
    from DCEDiffLib.preprocess import preprocess_case
    from DCEDiffLib.target_scale import target_norm_params
    from DCEDiffLib.training.case_data import load_case
    from real_exam_tissue_enhancement import exam_inputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patient", choices=("0000", "0001"), required=True)
    parser.add_argument("--t1pre-stand-in", choices=("pd", "vibe20"), default="vibe20")
    parser.add_argument("--data", type=Path, required=True, help="phantom cases (the phantoms' urine)")
    parser.add_argument("--cases", nargs="+", required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--model", default="Resources/Models/dcediff_cpu_phantom_regression.safetensors",
                        help="a regression (mean) model file")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    names = model.card["conditions"]

    phantom: Dict[str, list] = {m: [] for m in names}
    for name in args.cases:
        case = load_case(args.data / name, args.cache)
        spacing = case.grid["spacing"]
        mask = urine_mask(case.labels, case.legend["bladder"], [spacing[2], spacing[1], spacing[0]])
        if mask.sum() < 20:
            continue
        for index, modality in enumerate(names):
            phantom[modality].append(float(np.median(case.conditions[index][mask])))

    # the exam preprocessed as synthesize_case does it (registration, prostate crop, normalisation), without a synthesis
    with tempfile.TemporaryDirectory() as scratch:
        inputs = exam_inputs(args.patient, args.t1pre_stand_in, True, Path(scratch))
        case = preprocess_case(inputs, find_prostate=True, self_check=True)
    conditions = condition_array(case, names)
    labels = sitk.GetArrayFromImage(case.images["labels"])
    spacing_kji = case.images["t2w"].GetSpacing()[::-1]
    urine = urine_mask(labels, LABEL_LEGEND["bladder"], spacing_kji)
    tnorm = target_norm_params(case.norm["t1pre"])
    print(f"ProstateX-{args.patient} ({args.t1pre_stand_in} T1-pre), urine {int(urine.sum())} voxels; "
          f"phantom urine from {len(phantom[names[0]])} cases")
    print(f"{'input':<8}{'exam':>8}{'phantom median':>16}{'phantom 10-90 %':>18}")
    for index, modality in enumerate(names):
        values = np.asarray(phantom[modality])
        print(f"{modality:<8}{np.median(conditions[index][urine]):8.2f}{np.median(values):16.2f}"
              f"{np.percentile(values, 10):9.2f} – {np.percentile(values, 90):5.2f}")

    muscle = labels == LABEL_LEGEND["muscle"]
    t1_index = names.index("t1pre")

    def urine_enhancement(conds):
        """Per target: the urine's median RE over the T1-pre the network was given, and its median enhancement
        as a share of the muscle's (the size of what is drawn, whatever the urine's T1-pre)."""
        result = synthesize_volume(model, conds, samples=1, seed=0, device="cpu", adc_norm=case.norm.get("adc"))
        pre = denormalize(np.clip(conds[t1_index], -1, 1), case.norm["t1pre"]).astype(np.float64)
        rows = []
        for i in range(result.mean.shape[0]):
            gain = denormalize(result.mean[i], tnorm) - pre
            rows.append((float(np.median(gain[urine] / np.maximum(pre[urine], 1e-6))),
                         float(np.median(gain[urine]) / np.median(gain[muscle]))))
        return rows

    all_replaced = conditions
    for i, m in enumerate(names):
        all_replaced = with_channel_replaced(all_replaced, i, urine, float(np.median(phantom[m])))
    print("urine of the mean network, early / late: RE over the given T1-pre; enhancement / the muscle's")
    for label, conds in [("as is", conditions)] + [
            (f"{m} set to the phantoms", with_channel_replaced(conditions, i, urine, float(np.median(phantom[m]))))
            for i, m in enumerate(names)] + [("all four set", all_replaced)]:
        (re_e, share_e), (re_l, share_l) = urine_enhancement(conds)
        print(f"  {label:<26}RE {re_e:5.2f} / {re_l:5.2f}   share {share_e:5.2f} / {share_l:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
