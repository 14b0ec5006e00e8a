"""Does a DICOM series given for a role look like that role? A warning when its header says it is another kind.

File inputs (``--t2w FOLDER`` ...) are taken as given; swapped folders (an ADC map as the T2W, a T2W as the ADC)
would run to the end, caught only by the out-of-distribution score. The series header says more: ``--study``'s role
rules (:mod:`DCEDiffLib.study_roles`) recognise a T2-weighted TSE, an ADC map and a diffusion series. Only a clear
contradiction is reported, and only as a warning: a stand-in (the PD reference scan as the T1-pre of an exam without
one) is a choice, not a mistake.

A T1-pre whose header says contrast had been given (ContrastBolusAgent set, or a post-contrast description by the
study reader's rule) is warned about too: a post-contrast T1-pre makes the synthetic gland about twice too bright and
no image statistic catches it across patients (docs/ood.md). The agent counts only where it sets the T1-pre apart
from the T2W: some scanners fill the tag study-wide once the agent is entered at registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List

from DCEDiffLib.series_kinds import dcediff_result, is_adc, is_diffusion, is_dynamic, is_t2w
from DCEDiffLib.study_roles import ROLE_NAMES, is_post_contrast


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


# What sites write into ContrastBolusAgent when no agent was given (English, German, Dutch; casefolded, no spaces)
NO_AGENT_WORDS = frozenset({"none", "no", "n/a", "na", "nil", "-", "--", "0", "noagent", "noncontrast", "nocontrast",
                            "notapplicable", "kein", "keine", "ohne", "geen", "nvt"})


def agent_given(series) -> str:
    """The series' ContrastBolusAgent (0018,0010) as written, or "" where it is empty or says that none was given
    ("NONE", "N/A", "kein" ...: a value some sites enter for a pre-contrast series)."""
    text = " ".join(str(series.contrast_agent or "").split())
    return "" if "".join(text.split()).casefold() in NO_AGENT_WORDS else text


def agent_on_every_reference(series, references: Iterable) -> bool:
    """Whether ``series``' ContrastBolusAgent is also on every one of ``references`` (the series acquired before
    contrast: the T2W; at least one). Some scanners write the tag on every series of the exam once the agent was
    entered at registration; then it does not set a T1-pre apart as post-contrast."""
    def agent(s) -> str:
        return agent_given(s).casefold()

    references = [r for r in references if r is not series]
    return bool(agent(series)) and bool(references) and all(agent(r) == agent(series) for r in references)


def post_contrast_evidence(series, dce=None, references: Iterable = ()) -> str:
    """``ContrastBolusAgent (0018,0010) 'Gadovist'``, ``description 't1_vibe_tra_post' (a post-contrast name)`` or
    (``dce``: the study's DCE series) ``acquired after the DCE series started`` where the header of a series given as
    the T1-pre says contrast had been given, else "". A dynamic series is left out: its pre-arrival frames are the
    T1-pre by design, though its header names the agent. The agent is no evidence where every one of
    ``references`` (the T2W) carries it too (:func:`agent_on_every_reference`); the other evidence still counts."""
    if is_dynamic(series):
        return ""
    agent = agent_given(series)
    if agent and not agent_on_every_reference(series, references):
        return f"ContrastBolusAgent (0018,0010) {agent!r}"
    if is_post_contrast(series, None):  # the study reader's name rule ("post", "gd", "+c" ... without "pre")
        return f"description {(series.description + ' ' + series.protocol).strip()!r} (a post-contrast name)"
    if dce is not None and is_post_contrast(series, dce):
        return f"acquired after the DCE series {dce.label()} started"
    return ""


def _dicom_series(path, option: str) -> list:
    """The series of a DICOM folder or file ``path`` (DCEDiff results left out), or [] (not DICOM, unreadable, an
    image object, missing)."""
    from DCEDiffLib.dicom_study import read_dicom_header, scan_files, scan_folder

    if not isinstance(path, (str, Path)) or not Path(path).exists():
        return []
    path = Path(path)
    try:
        if path.is_dir():
            studies = scan_folder(path, warn=lambda message: None, name=option)
        elif read_dicom_header(path) is not None:
            studies = scan_files([path], option, warn=lambda message: None)
        else:
            return []  # not DICOM: no header to read
    except Exception:  # noqa: BLE001  reading the volume itself reports an unreadable input
        return []
    return [s for study in studies for s in study.series if not dcediff_result(s)]


def t1pre_contrast_warning(path, t2w=None) -> str:
    """A sentence when the T1-pre given as a DICOM folder or file has a header that says contrast had been given
    (:func:`post_contrast_evidence`), else "" (also for a NIfTI/NRRD file, an image object or an unreadable path).
    ``t2w``: the T2W input; where it is DICOM with the same ContrastBolusAgent, the tag was filled study-wide and
    is no evidence."""
    path = Path(path) if isinstance(path, (str, Path)) else path
    series = _dicom_series(path, "--t1pre")
    # the T2W's headers are read only where the agent tag is there to compare
    references = _dicom_series(t2w, "--t2w") if any(agent_given(s) for s in series) else []
    said = [f"{s.label()}: {evidence}" for s in series for evidence in [post_contrast_evidence(s, None, references)]
            if evidence]
    if not said:
        return ""
    return (f"--t1pre {path}: its DICOM header says contrast had been given ({'; '.join(said)}): a post-contrast "
            "T1-pre makes the synthetic enhancement wrong (about twice too bright); give the pre-contrast T1 (or the "
            "DCE's last frame before contrast arrival)")
