"""Names of the inputs and targets, in the channel order the model sees them (condition first)."""

# Condition channels, in model order (paper: T2W, PD, ADC, T1 pre-contrast).
INPUT_MODALITIES = ("t2w", "pd", "adc", "t1pre")
# Target channels: early and late DCE response.
TARGET_MODALITIES = ("dce_early", "dce_late")
ALL_MODALITIES = INPUT_MODALITIES + TARGET_MODALITIES

DESCRIPTIONS = {
    "t2w": "T2-weighted",
    "pd": "proton density",
    "adc": "ADC map",
    "t1pre": "T1 pre-contrast",
    "dce_early": "early-response DCE",
    "dce_late": "late-response DCE",
}
