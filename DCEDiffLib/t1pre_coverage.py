"""Where the synthesis has no T1-pre behind it: the share of the synthesized region outside the T1-pre's field of view.

The synthetic DCE is drawn relative to the T1-pre. The working grid (240 × 240 × 48 mm) is larger than many T1-pre
stand-ins: the ProstateX PD reference scan given as the T1-pre (192 mm, 16 slices of 3 mm) leaves 8.7 % (0000) and
8.8 % (0001) of the grid inside the T2W's field of view without T1-pre, most of its top slice (a whole T2W slice of
0000). There the model sees air and draws values near 0 (about a tenth of the covered tissue's), which the NIfTI,
the T2W-grid copies and the DICOM export show like any other synthetic voxel. Nothing said so; the phantoms the
model was trained on have a T1-pre over 99.5 % of the grid. :func:`t1pre_coverage` measures it for
``synthesis.json`` and the console.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from DCEDiffLib.errors import InputError

# A note when more of the region than this lacks T1-pre (a few edge voxels of a registered T1-pre do not count)
UNCOVERED_NOTE_FRACTION = 0.01
# A slice of the working grid is named when more than this share of its region lacks T1-pre
UNCOVERED_SLICE_FRACTION = 0.5


def t1pre_coverage(t1pre_inside: np.ndarray, t2w_inside: np.ndarray) -> Optional[dict]:
    """How much of the synthesized region the T1-pre covers, or None where no T2W voxel lies on the grid.

    ``t1pre_inside`` / ``t2w_inside``: (k, j, i) booleans on the working grid, True inside that series' field of view
    (after registration; :func:`DCEDiffLib.working_grid.coverage_mask`). The region is the grid inside the T2W, what
    the T2W-grid copies and the DICOM export show. Returns ``{"covered_share": ..., "uncovered_share": ...,
    "slices_mostly_uncovered": [...], "meaning": ...}`` (slices of the working grid, 1-based, inferior to superior,
    as the report counts them) with a ``note`` when more than :data:`UNCOVERED_NOTE_FRACTION` lacks T1-pre.
    """
    t1pre, t2w = np.asarray(t1pre_inside, dtype=bool), np.asarray(t2w_inside, dtype=bool)
    if t1pre.ndim != 3 or t1pre.shape != t2w.shape:
        raise InputError(f"T1-pre coverage: masks of shapes {t1pre.shape} and {t2w.shape}; expected two (k, j, i) "
                         "masks of the working grid's shape")
    region = int(t2w.sum())
    if region == 0:
        return None
    uncovered = t2w & ~t1pre
    share = float(uncovered.sum()) / region
    per_slice = uncovered.sum(axis=(1, 2)) / np.maximum(t2w.sum(axis=(1, 2)), 1)
    slices = [int(k) + 1 for k in np.flatnonzero(per_slice > UNCOVERED_SLICE_FRACTION)]
    record = {"covered_share": round(1.0 - share, 4), "uncovered_share": round(share, 4),
              "slices_mostly_uncovered": slices,
              "meaning": "share of the working grid inside the T2W's field of view that the registered T1-pre covers "
                         "(or not); slices: of the working grid, 1-based, inferior to superior, more than half "
                         "outside the T1-pre"}
    if share > UNCOVERED_NOTE_FRACTION:
        where = (f"; most of working-grid slice(s) {', '.join(map(str, slices))} of {t2w.shape[0]}"
                 if slices else "")
        record["note"] = (f"the T1-pre does not cover {share:.1%} of the synthesized region inside the T2W's field "
                          f"of view{where}: there the model had no T1-pre (it saw air) and its synthetic values, near "
                          "0, are no synthesis of that tissue")
    return record
