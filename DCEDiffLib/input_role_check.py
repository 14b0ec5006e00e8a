"""Does a DICOM series given for a role look like that role? A warning when its header says it is another kind.

File inputs (``--t2w FOLDER`` ...) are taken as given; swapped folders (an ADC map as the T2W, a T2W as the ADC)
would run to the end, caught only by the out-of-distribution score. The series header says more: ``--study``'s role
rules (:mod:`DCEDiffLib.study_roles`) recognise a T2-weighted TSE, an ADC map and a diffusion series. Only a clear
contradiction is reported, and only as a warning: a stand-in (the PD reference scan as the T1-pre of an exam without
one) is a choice, not a mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from DCEDiffLib.series_kinds import dcediff_result, is_adc, is_diffusion, is_t2w
from DCEDiffLib.study_roles import ROLE_NAMES


def _kind(series) -> str:
    """What the header says the series is: "ADC map", "diffusion series", "T2W" or "" (no strong evidence)."""
    if is_adc(series):
        return "ADC map"
    if is_diffusion(series):
        return "diffusion series"
    if is_t2w(series):
        return "T2W"
    return ""


def role_mismatch_warnings(inputs: Dict[str, object]) -> List[str]:
    """One sentence per input given as a DICOM folder whose one series is clearly another kind than its role."""
    from DCEDiffLib.dicom_study import scan_folder

    warnings: List[str] = []
    for role in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late"):
        path = inputs.get(role)
        if not isinstance(path, (str, Path)) or not Path(path).is_dir():
            continue
        try:
            studies = scan_folder(Path(path), warn=lambda message: None, name=f"--{role}")
        except Exception:  # noqa: BLE001  reading the volume itself reports an unreadable folder
            continue
        series = [s for study in studies for s in study.series]
        if len(series) != 1 or dcediff_result(series[0]):
            continue  # a DCEDiff result is refused by name when read (volume_io.read_dicom_series), not guessed at
        contradiction = header_contradiction(series[0], role)
        if contradiction:
            warnings.append(f"--{role.replace('_', '-')} {path}: series {contradiction}: check that the inputs are "
                            "not swapped")
    return warnings


def header_contradiction(series, role: str) -> str:
    """``#8 'name' looks like a diffusion series (its DICOM header), not like the ADC it is given as`` where the
    header clearly says another kind than ``role``, else "" (also for a series named by ``--series ROLE=NUMBER``)."""
    kind = _kind(series)
    if not kind or kind == {"t2w": "T2W", "adc": "ADC map"}.get(role):
        return ""
    article = "an" if kind[0] in "AEIOU" else "a"
    return (f"{series.label()} looks like {article} {kind} (its DICOM header), not like the {ROLE_NAMES[role]} it is "
            "given as")
