"""What kind of series a DICOM series is, from its header: localizer, diffusion (and ADC), dynamic, T2-weighted
TSE, PD-named, T1 gradient echo. Facts about one series; which series plays which role is
:mod:`DCEDiffLib.study_roles`' business."""

from __future__ import annotations

import re

import numpy as np

from DCEDiffLib.data_source import dicom_result_mark
from DCEDiffLib.dicom_study import SeriesInfo

T2W_MIN_TE_MS = 60.0        # T2 weighting needs a long echo time (PD/T1 TSE have short ones)


def whole_word(pattern: str) -> str:
    """``pattern`` not glued to other letters ("_adc" and "adc map" match, "radcliffe" does not)."""
    return rf"(?<![a-z]){pattern}(?![a-z])"


_LOCALIZER = re.compile(r"locali[sz]er|scout|survey|" + whole_word("loc") + "|" + whole_word("aa[a-z]*scout"))
# an ADC map by name: "ADC", Philips' "dADC", GE's "Apparent Diffusion Coefficient"
_ADC_TEXT = re.compile(whole_word("d?adc") + "|apparent diffusion")
# "T2W"/"T2WI"/"sT2W" (Philips, Canon, many sites) name a T2-weighted series as "t2" does; T2*, T2 maps do not.
_WEIGHTED = r"(?:wi?|-w)?"
_T2_TEXT = re.compile(r"(?<![a-z0-9])s?t2" + _WEIGHTED + r"(?![a-z0-9*]|_?star|_?map|\s?\*)")
_TSE_SEQUENCE = re.compile(r"tse|fse|ts2d|ts3d|spc|space|cube|haste|h2d", re.IGNORECASE)
_PD_TEXT = re.compile(whole_word("pd") + "|" + whole_word("pdw") + "|proton")
_GRE_TEXT = re.compile(r"vibe|flash|fl3d|fl2d|tfl|gre|spgr|lava|thrive|ffe|" + whole_word("s?t1" + _WEIGHTED))


def dcediff_result(s: SeriesInfo) -> str:
    """Why the series is a synthetic DCEDiff result by its header (:func:`DCEDiffLib.data_source.dicom_result_mark`:
    a result exported through Slicer's DICOM module and downloaded again with the study), or "" when it is none."""
    mark = dicom_result_mark(s.description, s.manufacturer)
    return f"a synthetic DCEDiff result (its {mark}), not an acquired image" if mark else ""


def is_single_volume(s: SeriesInfo) -> bool:
    """One image per slice position (not several time points, b-values or echoes stacked in the series), or one
    enhanced file holding one stack."""
    return s.one_file_stack or (not s.multi_frame and s.num_positions == s.num_files)


def is_localizer(s: SeriesInfo) -> bool:
    """A localizer/scout (by name), a series mixing slice planes, or too few slices to be a volume."""
    return bool(_LOCALIZER.search(s.text)) or s.orientation == "mixed" or s.num_positions < 3


def is_diffusion(s: SeriesInfo) -> bool:
    """DWI and its derived maps (ADC, TRACEW, FA, calculated b-values): :attr:`SeriesInfo.diffusion`."""
    return s.diffusion


def is_dynamic(s: SeriesInfo) -> bool:
    """A dynamic (DCE) acquisition: by name or sequence, or several temporal positions in the series."""
    if is_diffusion(s) or is_localizer(s):
        return False
    return s.named_dynamic or len(s.volumes()) > 1


def is_adc(s: SeriesInfo) -> bool:
    """An ADC map: ImageType ADC, or "ADC" in the name without FA/TRACEW/exponential image types."""
    types = set(s.image_type)
    if "ADC" in types:
        return True
    return bool(_ADC_TEXT.search(s.text)) and not ({"FA", "TRACEW", "EADC", "EXP"} & types) and \
        not re.search(whole_word("fa") + "|eadc|exp", s.text)


def is_t2w(s: SeriesInfo) -> bool:
    """A T2-weighted turbo spin echo (by name or sequence; long TE when the TE is given)."""
    if is_localizer(s) or is_diffusion(s) or is_dynamic(s) or s.modality not in ("MR", ""):
        return False
    if not (_T2_TEXT.search(s.text) or _TSE_SEQUENCE.search(s.sequence_name)):
        return False
    return s.echo_time is None or s.echo_time >= T2W_MIN_TE_MS


def unusable_axial_t2w(s: SeriesInfo) -> str:
    """Why a series named and timed like an axial T2-weighted TSE is no single axial stack (a slice stored twice, a
    slice of another plane, enhanced multi-frame files), or "" when it is none such. Such a series must not be
    passed over for a sagittal or coronal T2W as if the study had no axial one."""
    if is_t2w(s) and s.orientation == "axial" and is_single_volume(s):
        return ""   # a usable axial T2W
    if _LOCALIZER.search(s.text) or s.diffusion or s.named_dynamic or s.modality not in ("MR", ""):
        return ""
    if not (_T2_TEXT.search(s.text) or _TSE_SEQUENCE.search(s.sequence_name)) or \
            (s.echo_time is not None and s.echo_time < T2W_MIN_TE_MS):
        return ""
    normals = [np.cross(f.orientation[:3], f.orientation[3:]) for f in s.files if f.orientation is not None]
    axial = sum(int(np.argmax(np.abs(n))) == 2 for n in normals)
    if not normals or 2 * axial <= len(normals):
        return ""   # mostly sagittal or coronal: a T2W of another plane, not a damaged axial one
    if s.multi_frame:
        return (f"is stored as {s.num_files} enhanced (multi-frame) MR file(s) of up to "
                f"{max(f.frames for f in s.files)} frames that are not one stack of distinct slice positions (several "
                "volumes in one file, a volume split over files, or frames without positions), which --study does not "
                "read; expected one file per slice (classic MR Image Storage) or one file per stack, or give one 3D "
                "volume (NIfTI) as --t2w FILE")
    if axial < len(normals):
        return f"mixes slice planes ({len(normals) - axial} of its {len(normals)} images are not axial)"
    if s.num_positions < s.num_files:
        return (f"holds {s.num_files} images at {s.num_positions} slice positions (a slice stored twice, or several "
                "volumes in one series)")
    return ""


def is_pd_named(s: SeriesInfo) -> bool:
    """A proton-density series named so (e.g. ``tfl3d PD ref``, ``vibe_2deg_PD``)."""
    return bool(_PD_TEXT.search(s.text)) and not (is_localizer(s) or is_diffusion(s) or is_dynamic(s))


def is_gradient_echo_t1(s: SeriesInfo) -> bool:
    """A (3D) spoiled gradient echo with a flip angle: the VIBE/FLASH family used for T1 mapping and T1-pre."""
    if s.flip_angle is None or is_localizer(s) or is_diffusion(s) or is_dynamic(s) or _T2_TEXT.search(s.text):
        return False
    return bool(_GRE_TEXT.search(s.text) or _GRE_TEXT.search(s.sequence_name.lower()))
