"""Names of the inputs and targets, in the channel order the model sees them (condition first)."""

# Condition channels, in model order (paper: T2W, PD, ADC, T1 pre-contrast).
INPUT_MODALITIES = ("t2w", "pd", "adc", "t1pre")
# Target channels: early and late DCE response.
TARGET_MODALITIES = ("dce_early", "dce_late")
ALL_MODALITIES = INPUT_MODALITIES + TARGET_MODALITIES
# The acquired DCE's own pre-contrast frame (optional, with the acquired DCE; never a model input): where the T1-pre
# is another series (a VIBE), it gives the DCE sequence's intensity scale (pipeline.acquired_scale).
ACQUIRED_BASELINE = "dce_baseline"
# Inputs a model trained with modality dropout can do without (many PI-RADS protocols have no PD), and the value
# (normalised units, mid-range) its channel holds when missing: the same in training and at inference.
OPTIONAL_INPUTS = ("pd",)
MISSING_INPUT_VALUE = 0.0


def missing_inputs_allowed(card: dict) -> tuple:
    """The inputs the model of a (checked) model card can run without, in input order: those its card lists in
    ``optional_inputs`` (trained with modality dropout) and optional inputs that are not among its conditions.
    Plain Python (Slicer's GUI process asks it too, see DCEDiffSlicerLib/model_cards.py)."""
    listed = card.get("optional_inputs") if isinstance(card, dict) else None
    listed = set(listed) if isinstance(listed, list) else set()
    conditions = card.get("conditions") if isinstance(card, dict) else None
    conditions = conditions if isinstance(conditions, list) else list(INPUT_MODALITIES)
    return tuple(m for m in INPUT_MODALITIES if m in OPTIONAL_INPUTS and (m in listed or m not in conditions))

DESCRIPTIONS = {
    "t2w": "T2-weighted",
    "pd": "proton density",
    "adc": "ADC map",
    "t1pre": "T1 pre-contrast",
    "dce_early": "early-response DCE",
    "dce_late": "late-response DCE",
    "dce_baseline": "pre-contrast DCE frame",
}
