"""Names of the inputs and targets, in the channel order the model sees them (condition first)."""

# Condition channels, in model order (paper: T2W, PD, ADC, T1 pre-contrast).
INPUT_MODALITIES = ("t2w", "pd", "adc", "t1pre")
# Target channels: early and late DCE response.
TARGET_MODALITIES = ("dce_early", "dce_late")
ALL_MODALITIES = INPUT_MODALITIES + TARGET_MODALITIES
# Inputs a model trained with modality dropout can do without (many PI-RADS protocols have no PD), and the value
# (normalised units, mid-range) its channel holds when missing: the same in training and at inference.
OPTIONAL_INPUTS = ("pd",)
MISSING_INPUT_VALUE = 0.0

DESCRIPTIONS = {
    "t2w": "T2-weighted",
    "pd": "proton density",
    "adc": "ADC map",
    "t1pre": "T1 pre-contrast",
    "dce_early": "early-response DCE",
    "dce_late": "late-response DCE",
}
