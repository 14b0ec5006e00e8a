"""The real-anatomy family: one case's anatomy from a warped real label map (``prostatex_0000``/``_0001``).

Beside the analytic family of :func:`~DCEDiffLib.phantom.anatomy.build_anatomy`: the structures come from a
template (:mod:`~DCEDiffLib.phantom.templates`) placed by a random affine and elastic warp; the tissues, their
texture, the lesions (:func:`~DCEDiffLib.phantom.anatomy.place_lesions`: same kinds, zones, sizes and draws),
grids, motion, bias, noise and kinetics are those of the analytic family, so every modality comes out of the same
code. What the templates do not have (anterior fibromuscular stroma, seminal vesicles, periprostatic plexus) is
left out; BPH nodules are drawn inside the template's transition zone as in the analytic family.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import numpy as np

from DCEDiffLib.phantom.anatomy import (Anatomy, Ellipsoid, Intersection, Layer, _bumps, _inside, _sample_inside, _u,
                                        place_lesions, rotation_matrix)
from DCEDiffLib.phantom.templates import TemplateShape, TemplateWarp, load_template
from DCEDiffLib.phantom.tissues import Tissue

FAMILY = "prostatex"

# T2W contrast. Measured on the source exams (median N4-corrected T2W of each template label relative to fat,
# ProstateX-0000 / -0001): peripheral zone 0.74 / 0.52, transition zone 0.36 / 0.38, "muscle" — all non-fat soft
# tissue — 0.23 / 0.30, bone (mostly marrow) 0.93 / 0.98, bladder 1.21 / 1.48, rectum 0.33 / 0.24. The analytic
# family's T2 values (literature T2, tissues.py) make the gland brighter than fat (TSE fat is brighter than its T2
# suggests: J-coupling). This family draws each tissue's T2 so that its TSE signal relative to fat (nominal TR
# 5000 ms, TE 105 ms) falls in the ranges below. Peripheral zone and muscle were then tuned against the TAPS
# prostate model on seed 500 (docs/phantom.md, "Real-anatomy family"): a brighter PZ (0.72–0.95, the upper part
# of the real PZ's spread — its label median includes the darker zone boundary) and darker muscle (0.12–0.2, the
# real label mixes muscle with brighter soft tissue) turned most blank TAPS masks into found glands. T2 only
# enters the T2W (and the unweighted DWI), so kinetics, T1 and ADC stay those of the shared tables.
T2W_RATIO_TO_FAT = {
    "peripheral_zone": (0.72, 0.95), "transition_zone": (0.33, 0.45), "bph_glandular": (0.6, 0.85),
    "bph_stromal": (0.22, 0.32), "muscle": (0.12, 0.2), "marrow": (0.85, 1.0), "urine": (1.15, 1.5),
    "anterior_fibromuscular_stroma": (0.18, 0.28), "seminal_vesicle": (0.8, 1.1), "rectal_content": (0.1, 0.35),
}
NOMINAL_TR_S, NOMINAL_TE_S = 5.0, 0.105
# The template's rectum label is the whole rectum as seen on the source T2W: stool and gas, not the analytic
# family's air-filled lumen; its content gets a proton density to match.
RECTAL_CONTENT_PD = (0.25, 0.6)


def _tse(values: Dict[str, float]) -> float:
    return values["pd"] * (1.0 - np.exp(-NOMINAL_TR_S / values["t1"])) * np.exp(-NOMINAL_TE_S / values["t2"])


def _t2_for_signal(signal: float, values: Dict[str, float]) -> float:
    """The T2 (s) that gives a tissue of these proton density and T1 the nominal TSE ``signal``."""
    decay = signal / (values["pd"] * (1.0 - np.exp(-NOMINAL_TR_S / values["t1"])))
    return float(np.clip(-NOMINAL_TE_S / np.log(min(decay, 0.97)), 0.02, 3.0))


def match_source_t2w_contrast(rng: np.random.Generator, tissues: Dict[str, Tissue]) -> Dict[str, Tissue]:
    """The tissues with T2 redrawn so that the T2W contrast relative to fat matches :data:`T2W_RATIO_TO_FAT`, and the
    rectal content's proton density (:data:`RECTAL_CONTENT_PD`)."""
    out = dict(tissues)
    fat = _tse(tissues["fat"].values)
    content = dict(tissues["rectal_content"].values, pd=float(rng.uniform(*RECTAL_CONTENT_PD)))
    tissues = dict(tissues, rectal_content=dataclasses.replace(tissues["rectal_content"], values=content))
    for name, (low, high) in T2W_RATIO_TO_FAT.items():
        values = dict(tissues[name].values)
        values["t2"] = _t2_for_signal(float(rng.uniform(low, high)) * fat, values)
        out[name] = dataclasses.replace(tissues[name], values=values)
    return out


def lesions_keep_zone_contrast(shared: Dict[str, Tissue], matched: Dict[str, Tissue],
                               lesions: List[Dict[str, object]]) -> Dict[str, Tissue]:
    """The lesions' T2 redrawn so that each lesion's TSE signal stands to its zone's as it did with the shared tables.

    :func:`match_source_t2w_contrast` darkens the transition zone to the source exams' 0.33–0.45 of fat; lesions kept
    their shared T2 draws (50–95 ms), which left a TZ lesion as bright as its zone on T2W (median ratio 1.0, where
    the analytic family's are 0.6–0.95 and a real cancer is darker than its zone; docs/phantom.md). Deterministic (no
    draw), so every other draw of a seed is unchanged; ``lesions`` (case.json's descriptions) get the new ``t2_ms``.
    """
    out = dict(matched)
    for info in lesions:
        name, zone = f"lesion_{info['id']}", str(info["zone"])
        values = dict(matched[name].values)
        ratio = _tse(shared[name].values) / _tse(shared[zone].values)
        values["t2"] = _t2_for_signal(ratio * _tse(matched[zone].values), values)
        out[name] = dataclasses.replace(matched[name], values=values)
        info["t2_ms"] = round(values["t2"] * 1000, 2)
    return out


def build_template_anatomy(rng: np.random.Generator, tissues: Dict[str, Tissue], template: str,
                           endorectal_coil: bool = False, lesion_count: Optional[int] = None,
                           slice_orientation: Optional[np.ndarray] = None) -> Anatomy:
    """Draw one case's anatomy from template ``template``: patient placement, warp, BPH nodules, lesions.

    ``slice_orientation`` (the exam's grid axes in LPS) turns the patient so that the exam's slices cut the
    anatomy as the source exam's slices did (up to the small random rotations): real slices are prescribed
    relative to the prostate, and a tilt of the 3 mm slices through a 57 mm thick template would otherwise run
    out of its slab.

    ``endorectal_coil`` (domain B) adds the coil's position for the receive bias and empties the rectum (the
    balloon), without deforming the gland; ``lesion_count`` forces the number of lesions (else 0–3, mostly 1).
    """
    tissues = dict(tissues)
    tpl = load_template(template)
    layers: List[Layer] = []

    # --- patient placement (the same draws as the analytic family), then the template's warp
    centre_lps = np.array([_u(rng, -10, 10), _u(rng, -10, 30), _u(rng, -40, 40)])
    patient_rotation = rotation_matrix([_u(rng, -4, 4), _u(rng, -3, 3), _u(rng, -4, 4)])
    if slice_orientation is not None:
        patient_rotation = np.asarray(slice_orientation) @ tpl.direction.T @ patient_rotation
    warp = TemplateWarp(tpl, rng)
    shape = lambda structure, offset=0.0: TemplateShape(warp, structure, offset)

    layers.append(Layer("body", shape("body"), "fat", "fat"))
    layers.append(Layer("muscle", shape("muscle"), "muscle", "muscle"))
    cortex = _u(rng, 1.5, 2.5)
    layers.append(Layer("bone_cortex", shape("bone"), "cortical_bone", "bone"))
    layers.append(Layer("bone_marrow", shape("bone", cortex), "marrow", "bone"))
    layers.append(Layer("vessels", shape("vessel"), "vein", "vessel"))
    bladder_wall = _u(rng, 2.5, 4.0)
    layers.append(Layer("bladder_wall", shape("bladder"), "bladder_wall", "bladder"))
    layers.append(Layer("urine", shape("bladder", bladder_wall), "urine", "bladder"))
    rectal_wall = _u(rng, 2.5, 4.0)
    layers.append(Layer("rectal_wall", shape("rectum"), "rectal_wall", "rectum"))
    layers.append(Layer("rectal_content", shape("rectum", 2.0 if endorectal_coil else rectal_wall),
                        "rectal_content", "rectum"))
    if "seminal_vesicle" in tpl.present:
        layers.append(Layer("seminal_vesicles", shape("seminal_vesicle"), "seminal_vesicle", "seminal_vesicle"))

    gland, tz = shape("gland"), shape("transition_zone")
    layers.append(Layer("gland", gland, "peripheral_zone", "peripheral_zone"))
    layers.append(Layer("transition_zone", tz, "transition_zone", "transition_zone"))
    lo, hi = gland.bbox()
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    half_gland = half - (warp.max_displacement * 1.2 + 2.0)  # the box without bbox()'s safety margin

    # --- BPH nodules inside the transition zone (as the analytic family draws them)
    bph = _u(rng, 0.0, 1.0)
    n_nodules = int(round(bph * 8 + _u(rng, 0, 3)))
    nodules = 0
    for i in range(n_nodules):
        centre = _sample_inside(rng, lambda p: _inside(tz, p, 2.0),
                                lambda: mid + rng.uniform(-1, 1, 3) * half_gland, tries=40)
        if centre is None:
            continue
        kind = "bph_stromal" if rng.uniform() < 0.4 else "bph_glandular"
        r = _u(rng, 2.5, 3.5 + 4.0 * bph)
        nod = Ellipsoid(centre, [r * _u(rng, 0.8, 1.2), r * _u(rng, 0.8, 1.2), r * _u(rng, 0.8, 1.2)],
                        rotation_matrix(rng.uniform(-90, 90, 3)), 0.0, _bumps(rng, 4, 0.12))
        layers.append(Layer(f"bph_nodule_{i}", Intersection(nod, tz), kind, "transition_zone", _u(rng, 0.3, 1.0)))
        nodules += 1

    # --- lesions, exactly as the analytic family draws them
    pz_region = lambda p: _inside(gland, p, 2.0) and not _inside(tz, p, -1.0)
    tz_region = lambda p: _inside(tz, p, 2.5)
    sampler = lambda: mid + rng.uniform(-1, 1, 3) * half_gland * 0.95
    lesions = place_lesions(rng, tissues, layers, lesion_count, gland, pz_region, tz_region, sampler,
                            patient_rotation=patient_rotation, centre_lps=centre_lps)

    shared = tissues
    tissues = lesions_keep_zone_contrast(shared, match_source_t2w_contrast(rng, shared), lesions)
    coil_axis = None
    rect = tpl.structure_box("rectum")
    if endorectal_coil:
        tissues["rectal_content"] = dataclasses.replace(
            tissues["rectal_content"], values=dict(tissues["rectal_content"].values, pd=0.0))
        if rect is not None:
            front = warp.to_local(tpl.index_to_lps((rect[0] + rect[1]) / 2)) - [0.0, 6.0, 0.0]
            coil_axis = (front + [0, 0, -22.0], front + [0, 0, 22.0])

    body = tpl.structure_box("body")
    corners = np.array([warp.to_local(tpl.index_to_lps([a, b, c])) for a in (body[0][0], body[1][0])
                        for b in (body[0][1], body[1][1]) for c in (body[0][2], body[1][2])])
    body_axes = (max(float(np.abs(corners[:, 0]).max()), 150.0),
                 float(corners[:, 1].max() - corners[:, 1].min()) / 2, float(corners[:, 1].mean()))
    voxel_ml = float(np.prod(tpl.spacing)) / 1000.0 * float(np.prod(warp.scale))
    summary = {
        "family": FAMILY, "template": template,
        "template_source": "TCIA ProstateX (CC BY 3.0), label map derived by scripts/derive_anatomy_templates.py",
        "warp": warp.summary(),
        "gland_centre_lps": [round(float(v), 3) for v in centre_lps],
        "patient_rotation": [[round(float(v), 6) for v in row] for row in patient_rotation],
        "gland_volume_ml": round(float(np.count_nonzero(tpl.mask("gland"))) * voxel_ml, 1),
        "transition_zone_volume_ml": round(float(np.count_nonzero(tpl.mask("transition_zone"))) * voxel_ml, 1),
        "bph_grade": round(bph, 3), "bph_nodules": nodules,
        "endorectal_coil": bool(endorectal_coil),
        "bladder_wall_mm": round(bladder_wall, 2), "rectal_wall_mm": round(rectal_wall, 2),
        "bone_cortex_mm": round(cortex, 2),
        "body_semi_axes_mm": [round(body_axes[0], 1), round(body_axes[1], 1)],
    }
    return Anatomy(layers, tissues, centre_lps, patient_rotation, summary, lesions, coil_axis, body_axes,
                   template_warp=warp)
