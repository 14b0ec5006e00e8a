"""Realistic multimodal prostate MRI phantom with pharmacokinetic (Tofts) enhancement.

``generate_case(seed, domain)`` builds one synthetic exam — T2W, PD, ADC, T1-pre, early/late DCE and the full DCE
time series, each on its own oblique grid in one frame of reference, plus a label map on the T2W grid and every
generating parameter — and ``write_case`` / ``generate_dataset`` write cases as NIfTI or DICOM. See docs/phantom.md
for the model (anatomy, tissue values with sources, AIF/Tofts/signal equations, acquisition realism, domains).

Modules: ``tissues`` (property tables, texture), ``anatomy`` (shapes and layout), ``templates`` and
``template_anatomy`` (the real-anatomy family: warped label maps of real exams), ``rasterize`` (anatomy → grid),
``kinetics`` (AIF, Tofts, concentration ↔ signal), ``sequences`` (signal equations, ADC fit), ``acquisition``
(protocols, grids, motion, bias, noise), ``imaging`` (maps → images), ``generator`` (cases and datasets),
``dicom_export`` (DICOM series).
"""

from DCEDiffLib.phantom.acquisition import DOMAINS  # noqa: F401
from DCEDiffLib.phantom.anatomy import LABEL_LEGEND  # noqa: F401
from DCEDiffLib.phantom.generator import (PhantomCase, case_seed, generate_case, generate_dataset,  # noqa: F401
                                          write_case)

__all__ = ["DOMAINS", "LABEL_LEGEND", "PhantomCase", "case_seed", "generate_case", "generate_dataset", "write_case"]
