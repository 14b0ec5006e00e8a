#!/usr/bin/env python3
"""Derive the phantom's real-anatomy templates (label maps) from the two real ProstateX exams.

For each patient (ProstateX-0000, -0001 in ``../shared/data/prostatex``): the transversal T2W, the ADC and the PD
reference are read, ADC and PD are resampled onto the T2W in physical space, and everything is resampled onto a
coarser grid with the T2W's orientation (1 × 1 × 3 mm). One label map with the phantom's legend
(``DCEDiffLib.phantom.anatomy.LABEL_LEGEND``) is derived with the rules below and written as a compressed uint8
NIfTI to ``Resources/Anatomy/prostatex_<id>_labels.nii.gz``. No image intensity leaves this script.

Rules (imperfect on purpose, see Resources/Anatomy/README.md; intensities are relative to the N4-corrected T2W's
fat level and the PD's fat level, so they do not depend on the scanner's scaling):
- body: T2W above 12 % of its fat level, holes filled per slice, the largest connected region;
- prostate gland: the TAPS model (``DCEDiffLib.prostate_localization.fast_mask``) on the original T2W;
- transition vs peripheral zone: inside the gland, a voxel is peripheral zone when it lies in the posterior 55 % of
  the gland's antero-posterior extent within 6 mm of the gland surface, or in the posterior 70 % and brighter
  on T2W than the gland's 65th percentile (the PZ is the bright posterior-lateral horseshoe); the rest is
  transition zone; both are smoothed (opening/closing, largest part);
- bladder: urine — bright T2W (> 0.8 × fat) with high ADC (> 2000; fat has none in the fat-suppressed DWI), or very
  bright T2W (> 1.15 × fat) outside the ADC's field of view —, the largest such region anterior/superior to the
  gland, grown by 3 mm for the wall;
- rectum: on the gland's slices, the non-fat region behind the gland connected to the point 12 mm behind the
  gland's posterior edge, limited to an ellipse (24 mm left-right, 19 mm antero-posterior semi-axes) centred 18 mm
  behind the gland's edge, holes filled; on the slices above and below, the non-fat region in the same ellipse
  around, and within 6 mm of, the rectum of the neighbouring slice;
- fat: T2W above 0.55 × fat and PD above 0.6 × its fat level (per slice: the 3D PD slab is darker at its ends; T2W
  alone outside the PD's field of view);
- bone: femoral heads/acetabula — the part of the bright (fat-like) region that survives an in-plane opening with
  a 9 mm disk, more than 45 mm lateral of the gland centre, plus a 2 mm cortex rim where dark;
- vessels: small dark spots in fat (T2W below 0.45 × fat, 3–60 mm² per slice, surrounded by fat) — flow voids;
- muscle: every other body voxel (dark or intermediate soft tissue: muscles, levator ani, bowel wall, ...);
- the outermost 3 voxels of the field of view repeat the labels next to them (the body continues beyond it).

Run: ``.venv/bin/python scripts/derive_anatomy_templates.py [--data ../shared/data/prostatex] [--preview DIR]``
(needs scipy, onnxruntime and the TAPS model; about a minute per patient on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from DCEDiffLib import prostate_localization  # noqa: E402
from DCEDiffLib.phantom.anatomy import LABEL_LEGEND  # noqa: E402
from DCEDiffLib.volume_io import read_volume  # noqa: E402

PATIENTS = {
    # patient: (T2W folder, ADC folder, PD folder); 0001 has two transversal T2W, the later one is used.
    "0000": ("4-t2tsetra", "7-ep2ddifftraDYNDISTADC", "9-tfl3d_PD_reftra1.5x1.5t3"),
    "0001": ("10-t2tsetra", "8-ep2ddifftraDYNDISTMIXADC", "11-tfl3d_PD_reftra1.5x1.5t3"),
}
TEMPLATE_SPACING = (1.0, 1.0, 3.0)
L = LABEL_LEGEND


def template_grid(t2w: sitk.Image) -> sitk.Image:
    """The T2W's field of view and orientation at :data:`TEMPLATE_SPACING`."""
    spacing_in = np.asarray(t2w.GetSpacing())
    size_in = np.asarray(t2w.GetSize())
    extent = spacing_in * size_in
    size = [int(round(e / s)) for e, s in zip(extent, TEMPLATE_SPACING)]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(TEMPLATE_SPACING)
    ref.SetDirection(t2w.GetDirection())
    direction = np.asarray(t2w.GetDirection()).reshape(3, 3)
    # Same field-of-view corner (voxel edge), new voxel centres.
    corner = np.asarray(t2w.GetOrigin()) - direction @ (spacing_in / 2)
    ref.SetOrigin(tuple(corner + direction @ (np.asarray(TEMPLATE_SPACING) / 2)))
    return ref


def on_grid(image: sitk.Image, ref: sitk.Image, nearest: bool = False) -> np.ndarray:
    """``image`` resampled onto ``ref`` in physical space (anti-aliased when going coarser); array (k, j, i)."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    if not nearest:
        sigma = [max(0.0, (so - si) / 2.0) for so, si in zip(ref.GetSpacing(), image.GetSpacing())]
        if max(sigma) > 0:
            image = sitk.SmoothingRecursiveGaussian(image, [max(s, 1e-3) for s in sigma])
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.GetArrayFromImage(sitk.Resample(image, ref, sitk.Transform(), interp, 0.0, sitk.sitkFloat32))


def n4(t2w: sitk.Image) -> sitk.Image:
    """N4 bias-field correction (the pelvic coil makes the T2W much brighter near the skin)."""
    image = sitk.Cast(t2w, sitk.sitkFloat32)
    shrink = sitk.Shrink(image, [4, 4, 1])
    mask = sitk.OtsuThreshold(shrink, 0, 1, 200)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([30, 20])
    corrector.Execute(shrink, mask)
    log_bias = corrector.GetLogBiasFieldAsImage(image)
    return image / sitk.Exp(log_bias)


def disk(radius_vox: float) -> np.ndarray:
    """A 2-D disk (one slice thick) structuring element for in-plane morphology."""
    r = int(np.ceil(radius_vox))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy <= radius_vox * radius_vox)[None]


def largest(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def fill_slices(mask: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.binary_fill_holes(s) for s in mask])


def derive_labels(t2: np.ndarray, adc: np.ndarray, pd: np.ndarray, gland: np.ndarray, spacing) -> tuple:
    """The label map (k, j, i uint8) and a dict of the levels used, from co-registered arrays on the template grid.
    Array axes: k (slice, inferior → superior for these exams), j (anterior → posterior), i (right → left)."""
    sx, sy, _ = spacing
    rough_body = t2 > 0.1 * np.percentile(t2, 99)
    # Fat level: the bright mode of the body (subcutaneous and pelvic fat dominate the bright voxels).
    fat_t2 = float(np.percentile(t2[rough_body], 85))
    body = largest(fill_slices(ndimage.binary_closing(t2 > 0.12 * fat_t2, disk(2), iterations=1)))
    t2n = t2 / fat_t2
    # PD fat level per slice: the PD where the T2W is clearly fat (the 3D PD slab is darker at its edge slices).
    pdn = np.zeros_like(pd)
    fat_pd = []
    for k in range(t2.shape[0]):
        sure = body[k] & (pd[k] > 0) & (t2n[k] > 0.8)
        if sure.sum() > 200:
            fat_pd.append(float(np.median(pd[k][sure])))
            pdn[k] = pd[k] / fat_pd[-1]
    fat_pd = float(np.median(fat_pd))
    has_adc = adc > 0
    labels = np.zeros(t2.shape, np.uint8)

    gk, gj, gi = np.nonzero(gland)
    centre = np.array([gk.mean(), gj.mean(), gi.mean()])
    kk, jj, ii = np.indices(t2.shape)

    # --- fat, then everything else in the body is muscle until a later rule claims it
    has_pd = pdn > 0
    fat = body & (t2n > 0.55) & (~has_pd | (pdn > 0.6))
    labels[body] = L["muscle"]
    labels[fat] = L["fat"]

    # --- bone (femoral heads, acetabula): thick compact bright regions lateral of the gland
    lateral = np.abs(ii - centre[2]) * sx > 45
    band = np.abs(jj - centre[1]) * sy < 45
    marrow = ndimage.binary_opening(fat & lateral & band, disk(9 / sx))
    marrow = ndimage.binary_closing(marrow, disk(2 / sx))
    cortex = ndimage.binary_dilation(marrow, disk(2 / sx)) & ~marrow & (t2n < 0.55) & body
    labels[marrow | cortex] = L["bone"]

    # --- vessels: small dark spots surrounded by fat (flow voids)
    dark = body & (t2n < 0.45) & (labels != L["bone"])
    vessel = np.zeros_like(dark)
    for k in range(t2.shape[0]):
        lab, n = ndimage.label(dark[k])
        if n == 0:
            continue
        areas = ndimage.sum(np.ones_like(lab), lab, range(1, n + 1)) * sx * sy
        for index, area in enumerate(areas, start=1):
            if 3 <= area <= 60:
                comp = lab == index
                shell = ndimage.binary_dilation(comp, iterations=2) & ~comp
                if fat[k][shell].mean() > 0.6:
                    vessel[k] |= comp
    labels[vessel] = L["vessel"]

    # --- bladder: urine (very bright T2W, high ADC) anterior/superior to the gland, grown by its wall
    urine = body & (((t2n > 0.8) & (adc > 2000)) | (~has_adc & (t2n > 1.15))) & ~gland
    lab, n = ndimage.label(urine)
    bladder = np.zeros_like(urine)
    if n:
        sizes = ndimage.sum(urine, lab, range(1, n + 1))
        coms = ndimage.center_of_mass(urine, lab, range(1, n + 1))
        best = [(s, i + 1) for i, (s, c) in enumerate(zip(sizes, coms))
                if c[1] < centre[1] + 5 and abs(c[2] - centre[2]) * sx < 40 and s * sx * sy * 3 > 2000]
        if best:
            bladder = lab == max(best)[1]
            bladder = ndimage.binary_dilation(bladder, disk(3 / sx)) & body & ~gland
    labels[bladder] = L["bladder"]

    # --- rectum: the non-fat region connected to the point just behind the gland, on the gland's slices; on the
    # other slices the region connected to (and near) the rectum of the neighbouring slice
    gland_slices = [k for k in range(t2.shape[0]) if gland[k].any()]
    rectum = np.zeros_like(body)

    def candidate(k, centre_j, centre_i):
        # The rectum is a tube about 4 cm across: limit the search to an ellipse around the expected centre.
        ellipse = ((ii[0] - centre_i) * sx / 24.0) ** 2 + ((jj[0] - centre_j) * sy / 19.0) ** 2 < 1.0
        region = body[k] & ~fat[k] & ellipse & ~gland[k]
        return ndimage.label(ndimage.binary_opening(region, disk(1.5 / sx)[0]))

    for k in gland_slices:
        edge = int(gj[gk == k].max())
        seed_j, seed_i = int(min(edge + round(12 / sy), t2.shape[1] - 1)), int(round(centre[2]))
        lab, n = candidate(k, edge + 18 / sy, centre[2])
        window = lab[max(seed_j - 6, 0):seed_j + 7, max(seed_i - 6, 0):seed_i + 7]
        ids, counts = np.unique(window[window > 0], return_counts=True)
        if ids.size:
            rectum[k] = ndimage.binary_fill_holes(lab == ids[np.argmax(counts)])
    for order in (range(gland_slices[-1] + 1, t2.shape[0]), range(gland_slices[0] - 1, -1, -1)):
        for k in order:
            previous = rectum[k - 1] if k > gland_slices[-1] else rectum[k + 1]
            if not previous.any():
                break
            pj, pi = ndimage.center_of_mass(previous)
            near = ndimage.binary_dilation(previous, disk(6 / sx)[0])
            lab, n = candidate(k, pj, pi)
            ids = np.unique(lab[near & (lab > 0)])
            grown = np.isin(lab, ids[ids > 0]) & near
            rectum[k] = ndimage.binary_fill_holes(grown) if grown.sum() > 0.3 * previous.sum() else previous & body[k]
    labels[rectum] = L["rectum"]

    # --- gland: TAPS; zones by position and brightness
    labels[gland] = L["transition_zone"]
    g_t2 = t2n[gland]
    y_lo, y_hi = gj.min(), gj.max()
    rel_y = (jj - y_lo) / max(y_hi - y_lo, 1)          # 0 anterior, 1 posterior
    dist_in = ndimage.distance_transform_edt(np.pad(gland, ((1, 1), (0, 0), (0, 0))),
                                             sampling=(100.0, sy, sx))[1:-1]  # in-plane distance to the edge
    pz = gland & (((rel_y > 0.45) & (dist_in < 6.0)) | ((rel_y > 0.3) & (t2n > np.percentile(g_t2, 65))))
    pz = ndimage.binary_opening(pz, disk(1.5 / sx)) & gland
    tz = gland & ~pz
    tz = ndimage.binary_opening(tz, disk(2 / sx))
    tz = largest(tz)
    pz = gland & ~tz
    labels[pz] = L["peripheral_zone"]
    labels[tz] = L["transition_zone"]
    labels[~body] = L["background"]
    # The closing above loses the outermost voxels where the field of view cuts through the body: continue the
    # labels next to the border outwards (the phantom continues the border values beyond the template anyway).
    b = 3
    labels[:, :b, :], labels[:, -b:, :] = labels[:, b:b + 1, :], labels[:, -b - 1:-b, :]
    labels[:, :, :b], labels[:, :, -b:] = labels[:, :, b:b + 1], labels[:, :, -b - 1:-b]
    levels = {"fat_t2": fat_t2, "fat_pd": fat_pd}
    return labels, levels


def derive_patient(data: Path, patient: str, folders) -> tuple:
    """(label image on the template grid, statistics) of one patient."""
    t2_dir, adc_dir, pd_dir = (data / f"ProstateX-{patient}" / f for f in folders)
    t2w = read_volume(t2_dir, "T2W")
    adc = read_volume(adc_dir, "ADC")
    pd = read_volume(pd_dir, "PD")
    gland_mask = prostate_localization.fast_mask(t2w)
    ref = template_grid(t2w)
    t2 = on_grid(n4(t2w), ref)
    adc_a = on_grid(adc, ref)
    pd_a = on_grid(n4(pd), ref)
    gland = on_grid(gland_mask, ref, nearest=True) > 0.5
    gland = largest(gland)
    labels, _ = derive_labels(t2, adc_a, pd_a, gland, ref.GetSpacing())
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ref)
    voxel_ml = float(np.prod(ref.GetSpacing())) / 1000.0
    stats = {name: round(float(np.count_nonzero(labels == value)) * voxel_ml, 1)
             for name, value in L.items() if np.any(labels == value)}
    return image, stats, t2


def preview(labels: sitk.Image, t2: np.ndarray, path: Path) -> None:
    """A PNG of a few slices (T2W beside the labels) for a visual check (not written into the repository)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lab = sitk.GetArrayFromImage(labels)
    ks = [3, 7, 10, 13, 16]
    fig, axes = plt.subplots(2, len(ks), figsize=(4 * len(ks), 8))
    for c, k in enumerate(ks):
        axes[0, c].imshow(t2[k], cmap="gray", vmax=np.percentile(t2, 99.5))
        axes[1, c].imshow(lab[k], cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
        axes[0, c].set_title(f"k={k}")
        for a in axes[:, c]:
            a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=50)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "prostatex")
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Anatomy")
    parser.add_argument("--preview", type=Path, default=None, help="folder for PNG previews (outside the repo)")
    args = parser.parse_args(argv)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    args.out.mkdir(parents=True, exist_ok=True)
    for patient, folders in PATIENTS.items():
        labels, stats, t2 = derive_patient(args.data, patient, folders)
        path = args.out / f"prostatex_{patient}_labels.nii.gz"
        sitk.WriteImage(labels, str(path), True)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} kB, "
              f"volumes (mL) {json.dumps(stats)}")
        if args.preview is not None:
            args.preview.mkdir(parents=True, exist_ok=True)
            preview(labels, t2, args.preview / f"prostatex_{patient}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
