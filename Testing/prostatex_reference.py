"""Where the prostate is in the real ProstateX exams of ../shared/data, for tests that need the gland's position.

``TAPS_REFERENCE``: centroid (LPS mm) and volume (mL) of the mask TAPS's own full-resolution pipeline writes
(taps.segment, lavlab-taps 1.1.2, every window at 0.8 x 0.8 x 3 mm) for each patient's T2W series: the prostate
model's fast path is checked against it, and registration tests centre on it as ``dcediff synthesize`` centres on
what the model finds.
"""

TAPS_REFERENCE = {
    "ProstateX-0000": ("4-t2tsetra", (38.00, 21.32, -31.04), 40.1),
    "ProstateX-0001": ("10-t2tsetra", (-22.51, 40.71, -12.64), 24.4),
}
