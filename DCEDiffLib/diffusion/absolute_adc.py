"""The ADC in absolute units as one more input channel of the mean network (issue 12's lesion r, issue 17's
"inputs normalised against what is known, not only by percentiles").

Every input is normalised by its own percentiles over the working grid, which suits signal intensities (their
scale is arbitrary) but not the ADC: the ADC is quantitative (10⁻⁶ mm²/s on the phantom and on ProstateX, checked by
the out-of-distribution test), and its absolute value is what separates a lesion that enhances early and strongly
from one that enhances less than the gland (docs/model_quality.md, "an absolute-ADC channel"). The percentiles
depend on what else the grid holds (urine, background), so the same lesion ADC lands at different normalised values.
This channel keeps the absolute value: ``ADC / 1000 − 1``, clipped to [−1, 2] (0 → −1, 1000 → 0, free water 3000
→ 2), computed from the normalised ADC and its normalisation (an exact inverse) wherever the model runs.

The channel follows the conditions (and their neighbours' of a 2.5D network) and precedes the target channels;
:func:`~DCEDiffLib.diffusion.network_growth.insert_zero_input_channels` adds it to a trained network with zero
weights, so fine-tuning starts from the trained function.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from DCEDiffLib.errors import InputError
from DCEDiffLib.normalization import NormParams, denormalize

ADC_REFERENCE = 1000.0  # 10⁻⁶ mm²/s: a channel value of 0
CHANNEL_RANGE = (-1.0, 2.0)
CARD_FIELD = "absolute_adc"


def absolute_adc_channel(adc_normalized: np.ndarray, params: NormParams) -> np.ndarray:
    """The channel (same shape, float32) from the normalised ADC (not clipped) and its normalisation."""
    raw = denormalize(adc_normalized, params)
    return np.clip(raw / np.float32(ADC_REFERENCE) - 1.0, *CHANNEL_RANGE).astype(np.float32)


def adc_index(conditions: Sequence[str]) -> int:
    """Where the ADC is among ``conditions``; InputError when it is not there."""
    names = list(conditions)
    if "adc" not in names:
        raise InputError(f"a model that reads the ADC in absolute units needs the ADC condition; got {names}")
    return names.index("adc")


def reads_absolute_adc(card: dict) -> bool:
    """Whether a card's regression network (a regression card, or a residual card's mean network) reads the channel."""
    if card.get("objective") == "residual":
        return bool(card.get("mean_network", {}).get(CARD_FIELD, False))
    return bool(card.get(CARD_FIELD, False)) if card.get("objective") == "regression" else False


def check_card_field(value, objective: str) -> int:
    """The card field as the number of extra input channels (0 or 1); ValueError when it is not a boolean or sits on
    a card whose network does not read it directly (only a regression network does)."""
    if not isinstance(value, bool):
        raise ValueError(f"{CARD_FIELD} {value!r}: expected true or false")
    if value and objective != "regression":
        raise ValueError(f"{CARD_FIELD} belongs to a regression network (a residual card keeps its mean network's in "
                         f"mean_network); this one's objective is {objective!r}")
    return int(value)
