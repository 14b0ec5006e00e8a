"""DCEDiff engine: synthesize early/late prostate DCE-MRI from T2W, PD, ADC and T1-pre (DCE-diff).

Importable without 3D Slicer. Arrays follow SimpleITK/Slicer index order (k, j, i) = (slice, row, column);
physical coordinates are LPS millimetres, as in ITK and DICOM.
"""

__version__ = "0.1.0"

from DCEDiffLib.errors import CancelledError, DCEDiffError, InputError, ModelFileError  # noqa: F401
from DCEDiffLib.modalities import INPUT_MODALITIES, TARGET_MODALITIES  # noqa: F401


def sample(*args, **kwargs):
    """Run a sampler on a noise predictor; see :func:`DCEDiffLib.diffusion.samplers.sample`."""
    from DCEDiffLib.diffusion.samplers import sample as _sample

    return _sample(*args, **kwargs)
