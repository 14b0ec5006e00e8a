"""Which series of a DICOM study is the T2W, PD, ADC, T1-pre and acquired DCE: rules on header attributes.

Every role has an ordered list of rules; the first rule that some series satisfies decides, a fixed ranking picks
among the series it matched, and every other series a rule of that role matched is reported as a losing
candidate. Rules read DICOM attributes (:mod:`DCEDiffLib.dicom_study`; what kind a series is:
:mod:`DCEDiffLib.series_kinds`; the DCE's frames and contrast arrival: :mod:`DCEDiffLib.dce_series`), never folder
names:

- t2w: axial T2-weighted TSE, named t2/T2W/T2WI (of several, the last acquired: a repeat is made when the first
  is degraded); a sagittal/coronal T2W only when there is no axial one.
- adc: ImageType ADC (else "ADC", "dADC" or "Apparent Diffusion" in the description); axial first, "high
  b"/calculated maps last, then the most slices, the finest pixels, the first acquired.
- pd: a PD reference scan (the description names PD, e.g. ``tfl3d PD ref``); else the lowest-flip-angle
  pre-contrast 3D gradient echo (VIBE) at ≤ 6°.
- t1pre: the pre-contrast 3D gradient echo (VIBE) with the highest flip angle (≥ 8°, acquired before the DCE);
  else the last DCE frame before contrast arrival (found on the mean DCE curve).
- dce_early / dce_late (optional): the middle and the last time point of the DCE series (the paper's definition),
  or the frames closest to ``early_time``/``late_time`` seconds after contrast arrival. The DCE is either one
  series per time point (TCIA ProstateX: ``Twist_dynamic_..._TT=8.0s``) or one series with many temporal
  positions.

A DCEDiff result exported to DICOM (:func:`DCEDiffLib.series_kinds.dcediff_result`) is no candidate for any role:
it is listed in ``StudyPicks.skipped_series`` with why.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from DCEDiffLib.dce_series import DCE_MIN_FRAMES, DceSeries, find_arrival, find_dce_series, unusable_dynamic
from DCEDiffLib.dicom_part10 import DECOMPRESS_HINT
from DCEDiffLib.dicom_study import SeriesInfo, Study, Volume, read_study_volume
from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import ACQUIRED_BASELINE, OPTIONAL_INPUTS
from DCEDiffLib.series_kinds import (dcediff_result, is_adc, is_dynamic, is_gradient_echo_t1, is_localizer,
                                     is_pd_named, is_single_volume, is_t2w, unusable_axial_t2w, whole_word)

ROLES = ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")
REQUIRED_ROLES = ("t2w", "pd", "adc", "t1pre")
OPTIONAL_ROLES = OPTIONAL_INPUTS    # ("pd",): roles a model trained with modality dropout can do without
OVERRIDE_ROLES = ROLES + ("dce",)
LEFT_OUT = "none"           # --series pd=none: the role is left out on purpose
ROLE_NAMES = {"t2w": "T2W", "pd": "PD", "adc": "ADC", "t1pre": "T1-pre", "dce_early": "DCE early",
              "dce_late": "DCE late", "dce": "DCE"}

INCOMPLETE_HINT = ("expected every slice of the frames the run needs: restore the missing files, choose other frames "
                   "with --early-time/--late-time S, or give the acquired frames as --dce-early/--dce-late files")
PD_MAX_FLIP_DEG = 6.0       # a gradient echo at a flip angle this small is proton-density weighted
T1_MIN_FLIP_DEG = 8.0       # ... and from this one on T1-weighted (VIBE T1 mapping sets: 2/5/10/15/20°)
_POST_CONTRAST = re.compile(r"post|" + whole_word("gd") + r"|gad|contrast|kontrast|\+c|" + whole_word("ce"))
_HIGH_B = re.compile(r"high|" + whole_word("hb") + r"|calc|b1[0-9]{3}|b2000|eadc|exp")


# ----------------------------------------------------------------------------------------------- results

@dataclasses.dataclass
class Pick:
    """The series (and volume) chosen for one role, why, and which candidates lost."""

    role: str
    series: SeriesInfo
    volume: Volume
    rule: str
    lost: List[Tuple[SeriesInfo, str]] = dataclasses.field(default_factory=list)   # (series, its rule)
    frame_index: Optional[int] = None        # DCE frames: index in the DCE series (0-based)
    time_s: Optional[float] = None           # DCE frames: seconds from the first frame
    after_arrival_s: Optional[float] = None  # DCE frames: seconds after contrast arrival

    def to_dict(self) -> dict:
        """The JSON record of the pick (synthesis.json ``series``)."""
        out = {"series_number": self.series.number, "series_description": self.series.description,
               "series_instance_uid": self.series.uid, "rule": self.rule,
               "lost": [{"series_number": s.number, "series_description": s.description,
                         "series_instance_uid": s.uid, "rule": rule} for s, rule in self.lost]}
        if self.frame_index is not None:
            out["frame_index"] = self.frame_index
            out["temporal_position"] = self.volume.temporal_position
            out["time_s"] = None if self.time_s is None else round(self.time_s, 2)
            out["time_after_arrival_s"] = None if self.after_arrival_s is None else round(self.after_arrival_s, 2)
        return out

    def line(self) -> str:
        """One console line: role, series, rule, losers."""
        frame = ""
        if self.frame_index is not None:
            frame = f" frame {self.frame_index}"
            if self.time_s is not None:
                frame += f" ({self.time_s:.1f} s after the first frame"
                frame += f", {self.after_arrival_s:+.1f} s after arrival)" if self.after_arrival_s is not None \
                    else ")"
        lost = ""
        if self.lost:
            names = ", ".join(s.label() for s, _ in self.lost[:6])
            lost = f"; lost: {names}" + (f" and {len(self.lost) - 6} more" if len(self.lost) > 6 else "")
        return f"{self.role:9s} {self.series.label()}{frame} — {self.rule}{lost}"


@dataclasses.dataclass
class StudyPicks:
    """The roles recognised in one study."""

    study: Study
    picks: Dict[str, Pick]
    dce: Optional[DceSeries]
    notes: List[str]
    missing: List[str] = dataclasses.field(default_factory=list)   # required roles not found (require=False)
    problem: str = ""                        # the error pick_roles would have raised (require=False), else ""
    absent: List[str] = dataclasses.field(default_factory=list)    # optional roles (``optional``) not found
    # The acquired DCE's own pre-contrast frame, where the T1-pre is another series: it carries the DCE sequence's
    # intensity scale, which the evaluation needs (pipeline.acquired_scale); never a model input.
    baseline: Optional[Pick] = None
    # series never considered for any role, with why: a DCEDiff result exported to DICOM (series_kinds.dcediff_result)
    skipped_series: List[Tuple[SeriesInfo, str]] = dataclasses.field(default_factory=list)
    # picks to check by eye, one line each (the CLI prints them, synthesis.json records them): a T1-pre VIBE no DCE
    # series could date, a DCE time point missing slices, a series not in the T2W's frame of reference
    warnings: List[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        """``{"study": ..., "series": role → pick, "dce": ...}`` for synthesis.json."""
        return {"study": {"root": self.study.root, "study_instance_uid": self.study.study_uid,
                          "patient_id": self.study.patient_id, "study_date": self.study.study_date,
                          "series_found": len(self.study.series), "files_skipped": len(self.study.skipped)},
                "series": {role: self.picks[role].to_dict() for role in ROLES if role in self.picks},
                "dce": None if self.dce is None else self.dce.to_dict(), "notes": list(self.notes),
                "dce_baseline": None if self.baseline is None else self.baseline.to_dict(),
                "warnings": list(self.warnings),
                "skipped_series": [{"series_number": s.number, "series_description": s.description,
                                    "series_instance_uid": s.uid, "reason": why} for s, why in self.skipped_series]}

    def lines(self) -> List[str]:
        """Every pick, one line each, then the series skipped (never picked), then notes (e.g. no acquired DCE)."""
        baseline = [] if self.baseline is None else [self.baseline.line()]
        skipped = [f"{'skipped':9s} {s.label()} — {why}: never picked for any role" for s, why in self.skipped_series]
        return ([self.picks[r].line() for r in ROLES if r in self.picks] + baseline + skipped
                + [f"note: {n}" for n in self.notes])

    def load_inputs(self, read: Optional[Callable[[Volume, str], sitk.Image]] = None) -> Dict[str, sitk.Image]:
        """Read the chosen volumes (pixel data of these series only): modality key → float32 image, the acquired
        DCE's pre-contrast frame (:attr:`baseline`) under ``dce_baseline`` where there is one."""
        read = read or read_study_volume
        images = {role: read(pick.volume, f"{ROLE_NAMES[role]} {pick.series.label()}")
                  for role, pick in self.picks.items()}  # a slice dropped inside a stack: a gap, said there
        self.refuse_damaged_files()  # one dropped at either end of a stack
        baseline = self.load_baseline(read)
        if baseline is not None:
            images[ACQUIRED_BASELINE] = baseline
        return images

    def refuse_damaged_files(self) -> None:
        """:class:`InputError` when a file the study scan skipped as unreadable, but a DICOM file of an image class
        (:mod:`DCEDiffLib.dicom_part10`), lies in the folder of a chosen series: likely one of its slices, truncated
        or corrupt, which the series would be read without (unnoticed at either end of the stack)."""
        from DCEDiffLib.dicom_part10 import looks_like_image_file
        from DCEDiffLib.volume_io import damaged_files_error

        for role, pick in self.picks.items():
            folders = set(pick.series.folders)
            damaged = [path for path, _ in self.study.skipped
                       if str(Path(path).parent) in folders and looks_like_image_file(Path(path))]
            if damaged:
                raise damaged_files_error(f"{ROLE_NAMES[role]} {pick.series.label()}: {len(damaged)} DICOM file(s) "
                                          "in its folder", damaged)

    def load_baseline(self, read: Optional[Callable[[Volume, str], sitk.Image]] = None) -> Optional[sitk.Image]:
        """The DCE's own pre-contrast frame (:attr:`baseline`) as a float32 image, or None when there is none."""
        if self.baseline is None:
            return None
        return (read or read_study_volume)(self.baseline.volume, f"DCE baseline {self.baseline.series.label()}")


# ----------------------------------------------------------------------------------------------- series facts

def is_post_contrast(s: SeriesInfo, dce: Optional[DceSeries]) -> bool:
    """Named post-contrast, or acquired after the DCE series started."""
    if _POST_CONTRAST.search(s.text) and not re.search(whole_word("pre"), s.text):
        return True
    start = _dce_start(dce)
    return start is not None and s.series_time_s is not None and s.series_time_s > start


def _dce_start(dce: Optional[DceSeries]) -> Optional[float]:
    """The earliest SeriesTime of the DCE series (seconds), or None: no DCE, or none of its series says when."""
    starts = [f.series_time_s for f in dce.series if f.series_time_s is not None] if dce is not None else []
    return min(starts) if starts else None


def _pre_contrast_references(study: Study, picks: Dict[str, Pick]) -> List[SeriesInfo]:
    """The series a T1-pre's ContrastBolusAgent is compared with: the T2W pick, else every T2W-like series of the
    study, else every other series that is not dynamic (all acquired before contrast in a prostate protocol)."""
    if "t2w" in picks:
        return [picks["t2w"].series]
    return [s for s in study.series if is_t2w(s)] or [s for s in study.series if not is_dynamic(s)]


def _undated_t1pre(s: SeriesInfo, dce: Optional[DceSeries]) -> str:
    """Why the pre-contrast T1 gradient echo ``s`` is taken as pre-contrast by its name alone (no DCE series, or no
    SeriesTime on it or the DCE's, to date it by: :func:`is_post_contrast`), or "" when its time dated it."""
    if dce is None:
        why = "no DCE series in the study to date it by"
    elif s.series_time_s is None or _dce_start(dce) is None:
        why = f"no SeriesTime on it or on the DCE series {dce.label()} to date it by"
    else:
        return ""
    return (f"not dated: {why}, taken as pre-contrast by its name/description only (a post-contrast one with a "
            "neutral name would be taken too: check it was acquired before contrast)")


# ----------------------------------------------------------------------------------------------- picking

def parse_series_overrides(items: Optional[Iterable[str]]) -> Dict[str, object]:
    """``["t2w=6", "t1pre=dce"]`` → ``{"t2w": 6, "t1pre": "dce"}``; :class:`InputError` on a malformed item."""
    out: Dict[str, object] = {}
    for item in items or ():
        role, _, value = str(item).partition("=")
        role = role.strip().lower().replace("-", "_")
        value = value.strip()
        if role not in OVERRIDE_ROLES or not value:
            raise InputError(f"--series {item!r}: expected ROLE=NUMBER with ROLE one of {', '.join(OVERRIDE_ROLES)} "
                             "and NUMBER a series number (t1pre=dce: the last DCE frame before contrast arrival; "
                             "pd=none: no PD)")
        if role == "t1pre" and value.lower() == "dce":
            out[role] = "dce"
            continue
        if role in OPTIONAL_ROLES and value.lower() == "none":
            out[role] = LEFT_OUT  # e.g. pd=none: synthesize without PD (a model trained to do without it)
            continue
        try:
            out[role] = int(value)
        except ValueError:
            raise InputError(f"--series {item!r}: {value!r} is not a series number; expected an integer "
                             "(SeriesNumber, as printed with every pick)") from None
    return out


def pick_roles(study: Study, overrides: Optional[Dict[str, object]] = None, early_time: Optional[float] = None,
               late_time: Optional[float] = None,
               read: Optional[Callable[[Volume, str], sitk.Image]] = None, given: Iterable[str] = (),
               require: bool = True, optional: Iterable[str] = ()) -> StudyPicks:
    """Recognise every role in ``study`` (header rules; DCE frames are read only to find contrast arrival).

    ``overrides`` (from :func:`parse_series_overrides`) replaces a pick by a series number; roles in ``given``
    come from elsewhere (files on the command line) and are neither picked nor required. Raises one
    :class:`InputError` naming every missing required role (t2w, pd, adc, t1pre) and listing the series found;
    with ``require=False`` it returns the roles it found instead, the missing ones in ``missing`` and that
    message in ``problem`` (``dcediff dataset``'s manifest, the Slicer module's partial fill). Roles in
    ``optional`` (only ``pd``: the model was trained to do without it) may be missing: they are then listed in
    ``absent`` and said in a note, not in ``missing``.
    """
    optional = set(optional)
    if optional - set(OPTIONAL_ROLES):
        raise InputError(f"optional roles {sorted(optional - set(OPTIONAL_ROLES))}: only "
                         f"{', '.join(OPTIONAL_ROLES)} can be left out")
    overrides = dict(overrides or {})
    given = set(given)
    both = sorted(given & set(overrides))
    if both:
        raise InputError(f"--series {', '.join(both)}: these roles are also given with their own options "
                         f"({', '.join('--' + r.replace('_', '-') for r in both)}); give one or the other")
    left_out = sorted(r for r, v in overrides.items() if v == LEFT_OUT)
    refused = [r for r in left_out if r not in optional]
    if refused:
        raise InputError(f"--series {refused[0]}=none: the model needs {ROLE_NAMES[refused[0]]} (its card does not "
                         f"list {refused[0]!r} in optional_inputs); name a series instead")
    read = read or read_study_volume
    # a DCEDiff result exported to DICOM and downloaded again with the study: as the acquired DCE it would score a
    # synthesis against itself, as an input it is no acquired image; the rules below never see it
    whole = study
    study, skipped_series = _without_dcediff_results(whole, overrides)
    # the option takes a file or a series folder: name the option, not the kind of path
    notes: List[str] = [f"{ROLE_NAMES[r]} given with --{r.replace('_', '-')}, not taken from the study"
                        for r in ROLES if r in given]
    notes += [f"{ROLE_NAMES[r]} left out (--series {r}=none): synthesizing without {ROLE_NAMES[r]}, which the model "
              "was trained to do without" for r in left_out]
    picks: Dict[str, Pick] = {}
    problems: List[str] = []

    dce_all = find_dce_series(study)
    dce = _choose_dce(study, dce_all, overrides.get("dce"))
    untimed = "" if dce is not None else "; ".join(
        f"the dynamic series {s.label()} {why}" for s, why in unusable_dynamic(study, dce_all))
    problems += _undecodable_problems(study, given, overrides)

    for role, rules in (("t2w", _t2w_rules(study)), ("adc", _adc_rules()), ("pd", _pd_rules()),
                        ("t1pre", _t1_rules(dce, picks))):
        if role in given or role in left_out:
            continue
        ranked = _apply_rules(study, rules)
        if role in overrides and not (role == "t1pre" and overrides[role] == "dce"):
            picks[role] = _override(study, role, overrides[role], ranked)
        elif ranked and not (role == "t1pre" and overrides.get(role) == "dce"):
            series, lost = ranked[0][0], ranked[1:]
            picks[role] = Pick(role, series, series.volumes()[0], _winner_rule(ranked, rules), lost)

    problems += _unusable_axial_t2w_problems(study, picks.get("t2w"), given, overrides)
    warnings: List[str] = []
    if dce is not None:  # kept at its time, never picked: the run goes on where the frames it needs are whole
        warnings += [f"{dce.incomplete_text(i)}: left out of the DCE's mean curve and never picked (the other "
                     "frames keep their times and indices)" for i in sorted(dce.incomplete)]
    if "t1pre" in picks and "t1pre" not in overrides:  # a series named with --series is the user's call
        undated = _undated_t1pre(picks["t1pre"].series, dce)
        if undated:  # the pick stays; the line, synthesis.json and the CLI's warning say on what it rests
            picks["t1pre"].rule += f"; {undated}"
            warnings.append(f"{ROLE_NAMES['t1pre']} {picks['t1pre'].series.label()}: {undated}")
    if "t1pre" in picks and "t1pre" not in given:  # a T1-pre file given instead is checked by the pipeline
        from DCEDiffLib.input_role_check import post_contrast_evidence

        # the agent tag counts only where the T2W lacks it (some scanners fill it study-wide)
        evidence = post_contrast_evidence(picks["t1pre"].series, dce, _pre_contrast_references(study, picks))
        if evidence:  # e.g. --series t1pre=N with N a post-contrast VIBE: the enhancement comes out wrong
            warnings.append(f"{ROLE_NAMES['t1pre']} {picks['t1pre'].series.label()}: its DICOM header says contrast "
                            f"had been given ({evidence}): a post-contrast T1-pre makes the synthetic enhancement "
                            "wrong; name the pre-contrast T1 with --series t1pre=NUMBER")

    if "t1pre" not in picks and "t1pre" not in given:
        pick, why = _t1_from_dce(dce, read, ranked_lost=_apply_rules(study, _t1_rules(dce, picks)),
                                 chosen=overrides.get("t1pre") == "dce", untimed=untimed)
        if pick is not None:
            picks["t1pre"] = pick
        elif overrides.get("t1pre") == "dce":
            problems.append(f"T1-pre (--series t1pre=dce): {why}")
        elif dce is not None and (dce.arrival_index or 0) - 1 in dce.incomplete:  # there but broken: said so
            problems.append(f"T1-pre: {why}")

    if {"dce_early", "dce_late"} & given:
        pass                                  # the acquired DCE comes from files
    elif dce is not None:
        try:
            _pick_dce_frames(dce, dce_all, picks, early_time, late_time, read)
        except InputError as exc:
            problems.append(str(exc))
    elif early_time is not None or late_time is not None:
        problems.append("--early-time/--late-time: the study has no DCE series (a dynamic series with several "
                        "time points, or one series per time point)" + (f": {untimed}" if untimed else ""))
    elif untimed:  # a DCE is there but cannot be split into frames: said, not "no DCE"
        notes.append(f"no acquired DCE read: {untimed}; synthesis only (no residuals or metrics): give the acquired "
                     "frames as --dce-early/--dce-late files, or re-export the series with its frame times "
                     "(classic MR images, one file per slice)")
    else:
        notes.append("no acquired DCE series in the study: synthesis only (no residuals or metrics)")
    for role in ("dce_early", "dce_late"):
        if role in overrides:
            picks[role] = _override(study, role, overrides[role], [])
    notes += _override_contradictions(picks, overrides)

    absent = [r for r in REQUIRED_ROLES if r not in picks and r not in given and r in optional]
    for role in (r for r in absent if r not in left_out):
        notes.append(f"no {ROLE_NAMES[role]} found (expected {ROLE_NEEDS[role]}): synthesizing without "
                     f"{ROLE_NAMES[role]}, which the model was trained to do without")
    missing = [r for r in REQUIRED_ROLES if r not in picks and r not in given and r not in optional]
    problem = _missing_message(study, missing, problems, dce, untimed, skipped_series) if (missing or problems) else ""
    if problem and require:
        raise InputError(problem)
    _refuse_shared_volumes(picks)
    baseline = None
    dce_uids = set() if dce is None else {s.uid for s in dce.series}
    from_dce = [r for r in ("dce_early", "dce_late") if r in picks and picks[r].series.uid in dce_uids]
    if len(from_dce) == 1:  # one acquired frame from the DCE, the other from another series (--series): two scales
        other = ({"dce_early", "dce_late"} - set(from_dce)).pop()
        notes.append(f"{ROLE_NAMES[other]} is not a frame of the DCE series {dce.label()}: the acquired frames are "
                     "on two series' intensity scales; no pre-contrast frame rescales them (compared as given)")
    if dce is not None and len(from_dce) == 2:
        try:
            baseline, why = _dce_baseline(dce, picks.get("t1pre"), read)
        except InputError as exc:
            problem = _missing_message(study, missing, problems + [str(exc)], dce, untimed, skipped_series)
            if require:
                raise InputError(problem) from None
            baseline, why = None, ""
        if why:
            notes.append(why)
        for role in ("dce_early", "dce_late"):  # the arrival is known now: the frames' time after it too
            pick = picks.get(role)
            if pick is not None and pick.after_arrival_s is None and None not in (pick.time_s, dce.arrival_time_s):
                pick.after_arrival_s = pick.time_s - dce.arrival_time_s
    warnings += _frame_of_reference_warning(picks, baseline)
    return StudyPicks(whole, picks, dce, notes, missing, problem, absent, baseline, skipped_series, warnings)


def _frame_of_reference_warning(picks: Dict[str, Pick], baseline: Optional[Pick]) -> List[str]:
    """One line naming the picked series whose FrameOfReferenceUID differs from the T2W's (both have one): their
    scanner coordinates are not tied to the T2W's, yet registration starts from them. One line for all: an anonymiser
    that rewrites the UID per series makes every series differ."""
    t2w = picks.get("t2w")
    if t2w is None or not t2w.series.frame_of_reference:
        return []
    named, seen = [], {t2w.series.uid}
    for pick in [picks[r] for r in ROLES if r in picks] + ([baseline] if baseline is not None else []):
        s = pick.series
        if s.uid not in seen and s.frame_of_reference and s.frame_of_reference != t2w.series.frame_of_reference:
            named.append(f"{ROLE_NAMES.get(pick.role, 'DCE baseline')} {s.label()}")
        seen.add(s.uid)
    if not named:
        return []
    return [f"{', '.join(named)}: FrameOfReferenceUID differs from the T2W {t2w.series.label()}'s, so their scanner "
            "coordinates are not tied to the T2W's (or an anonymiser rewrote the UIDs per series); registration "
            "starts from them anyway: check the alignment"]


def _without_dcediff_results(study: Study, overrides) -> Tuple[Study, List[Tuple[SeriesInfo, str]]]:
    """The study without its series that are DCEDiff results (:func:`dcediff_result`), and those series with why.
    :class:`InputError` for ``--series ROLE=NUMBER`` naming such a series (and no acquired series of that number)."""
    skipped = [(s, why) for s in study.series for why in [dcediff_result(s)] if why]
    if not skipped:
        return study, []
    kept = [s for s in study.series if not any(s is other for other, _ in skipped)]
    for role, number in overrides.items():
        named = [(s, why) for s, why in skipped if isinstance(number, int) and s.number == number]
        if named and not any(s.number == number for s in kept):
            series, why = named[0]
            raise InputError(f"--series {role}={number}: {series.label()} is {why}; expected an acquired series "
                             "(a DCEDiff result is never an input)")
    return dataclasses.replace(study, series=kept), skipped


def _undecodable_problems(study: Study, given, overrides) -> List[str]:
    """MR image files the scan could not read for their transfer syntax: their series are invisible to the rules,
    which would pick another series in their place (a coronal T2W for the JPEG XL axial one) without a word; refused
    unless every required role is given as a file or named with --series."""
    if not study.undecodable or all(r in given or r in overrides for r in REQUIRED_ROLES):
        return []
    by_syntax: Dict[str, List[str]] = {}
    for path, syntax in study.undecodable:
        by_syntax.setdefault(syntax, []).append(path)
    found = "; ".join(f"{len(paths)} file(s) in transfer syntax {syntax} (e.g. {paths[0]})"
                      for syntax, paths in by_syntax.items())
    return [f"{len(study.undecodable)} MR image file(s) cannot be decoded by this reader (GDCM): {found}; their "
            f"series cannot be recognised, so another series could be taken for its role: {DECOMPRESS_HINT}, or "
            "name every role with --series ROLE=NUMBER or give the inputs as files"]


def _unusable_axial_t2w_problems(study: Study, pick: Optional[Pick], given, overrides) -> List[str]:
    """Where no axial T2W was picked but the study holds one that is no single stack (a slice stored twice, a slice
    of another plane, an enhanced multi-frame file): the reason, so that a sagittal or coronal T2W is not taken in
    its place as if the study had no axial one (another plane, another resolution, without a word)."""
    if "t2w" in given or "t2w" in overrides or (pick is not None and pick.series.orientation == "axial"):
        return []
    found = [(s, why) for s in study.series for why in [unusable_axial_t2w(s)] if why]
    instead = "" if pick is None else f", not replaced by the {pick.series.orientation} T2W {pick.series.label()}"
    return [f"T2W: the axial T2W {s.label()} cannot be read as one volume: it {why}{instead}; repair or re-export "
            "the series, or name the T2W with --series t2w=NUMBER" for s, why in found]


def _override_contradictions(picks: Dict[str, Pick], overrides) -> List[str]:
    """A note for every series named with ``--series ROLE=NUMBER`` whose header says it is another kind (a calculated
    b-value image as the ADC), as the same series given as a folder (``--adc DIR``) gets a warning: a mistyped
    series number otherwise shows only in the out-of-distribution score."""
    from DCEDiffLib.input_role_check import header_contradiction

    notes = []
    for role, pick in picks.items():
        said = header_contradiction(pick.series, role) if isinstance(overrides.get(role), int) else ""
        if said:
            notes.append(f"--series {role}={overrides[role]}: {said}; check the series number")
    return notes


def _refuse_shared_volumes(picks: Dict[str, Pick]) -> None:
    """One volume in two input roles (e.g. ``--series t1pre=N`` with N the PD) would feed the model one image as
    two contrasts: refused, as for files given twice. DCE targets may share a series with T1-pre (other frames)."""
    seen: Dict[Tuple[str, str], str] = {}
    for role in REQUIRED_ROLES + ("dce_early", "dce_late"):
        if role not in picks:
            continue
        pick = picks[role]
        key = (pick.series.uid, pick.volume.files[0].path)
        if key in seen and not (role.startswith("dce") and seen[key].startswith("dce")):
            raise InputError(f"--study: {ROLE_NAMES[seen[key]]} and {ROLE_NAMES[role]} are the same series "
                             f"{pick.series.label()}; each role needs its own series (--series ROLE=NUMBER)")
        seen.setdefault(key, role)


# (rule text, which series it matches, their ranking key, what each position of that key means): the last names the
# criterion that put the winner ahead of the runner-up, as "chosen over #6 as the later acquisition"
Rule = Tuple[str, Callable[[SeriesInfo], bool], Callable[[SeriesInfo], tuple], Tuple[str, ...]]

# the criteria of _newest_first's three positions
_NEWEST_FIRST_CRITERIA = ("as the one with an acquisition time", "as the later acquisition",
                          "by its higher series number")


def _newest_first(s: SeriesInfo) -> tuple:
    return (s.series_time_s is None, -(s.series_time_s or 0.0), -(s.number or 0))


def _t2w_rules(study: Optional[Study] = None) -> List[Rule]:
    centre = _other_series_centre(study) if study is not None else None

    def off_the_others(s: SeriesInfo) -> bool:
        """Whether the series misses the slab the study's other axial series image (an abdominal T2W, 150 mm up)."""
        if centre is None:
            return False
        heights = [f.position[2] for f in s.files if f.position is not None]
        return bool(heights) and not (min(heights) - 5.0 <= centre <= max(heights) + 5.0)

    return [
        ("axial T2-weighted TSE (of several: the one imaging the other series' region, then the last acquired, a "
         "repeat is made when the first is degraded)",
         lambda s: is_t2w(s) and s.orientation == "axial" and is_single_volume(s),
         lambda s: (off_the_others(s), "DERIVED" in s.image_type) + _newest_first(s),
         ("as the one imaging the other series' region", "as an original, not derived, image")
         + _NEWEST_FIRST_CRITERIA),
        # also the rule a losing sagittal/coronal T2W is listed with, beside an axial winner: say when it applies
        ("T2-weighted TSE in another plane (taken only when the study has no usable axial T2W)",
         lambda s: is_t2w(s) and is_single_volume(s), lambda s: ("DERIVED" in s.image_type,) + _newest_first(s),
         ("as an original, not derived, image",) + _NEWEST_FIRST_CRITERIA),
    ]


def _other_series_centre(study: Study) -> Optional[float]:
    """The median height (patient z, mm) of the slices of the study's axial series other than T2W and localizers
    (diffusion, ADC, DCE, VIBE): where the prostate protocol images; None without such series."""
    heights = [f.position[2] for s in study.series
               if s.orientation == "axial" and not is_t2w(s) and not is_localizer(s)
               for f in s.files if f.position is not None]
    return float(np.median(heights)) if heights else None


def _adc_rank(s: SeriesInfo) -> tuple:
    spacing = min(s.pixel_spacing) if s.pixel_spacing else 99.0
    return (s.orientation != "axial", bool(_HIGH_B.search(s.text)), -s.num_positions, spacing, s.number or 0)


def _adc_rules() -> List[Rule]:
    tail = " (of several: axial, not high-b/calculated, most slices, finest pixels, first acquired)"
    criteria = ("as axial", "as no high-b or calculated image", "for its more slices", "for its finer pixels",
                "by its lower series number")
    return [
        ("ADC map: ImageType ADC" + tail, lambda s: "ADC" in s.image_type and is_single_volume(s), _adc_rank,
         criteria),
        ("ADC map: 'ADC' in the description" + tail, lambda s: is_adc(s) and is_single_volume(s), _adc_rank,
         criteria),
    ]


def _pd_rules() -> List[Rule]:
    return [
        ("PD reference scan: PD in the description, e.g. 'tfl3d PD ref' (of several: axial, 'ref', lowest flip)",
         lambda s: is_pd_named(s) and is_single_volume(s),
         lambda s: (s.orientation != "axial", "ref" not in s.text, s.flip_angle or 0.0, s.number or 0),
         ("as axial", "for 'ref' in its description", "for its lower flip angle", "by its lower series number")),
        (f"lowest-flip-angle pre-contrast 3D gradient echo (VIBE, flip ≤ {PD_MAX_FLIP_DEG:g}°)",
         lambda s: is_gradient_echo_t1(s) and s.flip_angle <= PD_MAX_FLIP_DEG and is_single_volume(s)
         and not _POST_CONTRAST.search(s.text),
         lambda s: (s.flip_angle, s.orientation != "axial", s.number or 0),
         ("for its lower flip angle", "as axial", "by its lower series number")),
    ]


def _t1_rules(dce: Optional[DceSeries], picks: Dict[str, Pick]) -> List[Rule]:
    def candidate(s: SeriesInfo) -> bool:
        if not is_gradient_echo_t1(s) or is_pd_named(s) or s.flip_angle < T1_MIN_FLIP_DEG:
            return False
        if "pd" in picks and picks["pd"].series.uid == s.uid:
            return False
        return is_single_volume(s) and not is_post_contrast(s, dce)

    return [(f"pre-contrast 3D gradient echo (VIBE) with the highest flip angle (≥ {T1_MIN_FLIP_DEG:g}°, "
             "acquired before the DCE)", candidate,
             lambda s: (-s.flip_angle, s.orientation != "axial") + _newest_first(s),
             ("for its higher flip angle", "as axial") + _NEWEST_FIRST_CRITERIA)]


def _apply_rules(study: Study, rules: Sequence[Rule]) -> List[Tuple[SeriesInfo, str]]:
    """Every series some rule matched, best first: by rule order, then the rule's ranking."""
    ranked: List[Tuple[SeriesInfo, str]] = []
    seen = set()
    for name, match, rank, _ in rules:
        matched = sorted((s for s in study.series if s.uid not in seen and match(s)), key=rank)
        if len(matched) == 1:
            name = re.sub(r" \(of several:[^)]*\)", "", name)   # no tie to break
        for s in matched:
            ranked.append((s, name))
            seen.add(s.uid)
    return ranked


def _winner_rule(ranked: List[Tuple[SeriesInfo, str]], rules: Sequence[Rule]) -> str:
    """The rule text of ``ranked[0]``, with the criterion that put it ahead of ``ranked[1]`` where one rule matched
    both (a winner by rule order alone needs no more words)."""
    (first, said), runner_up = ranked[0], ranked[1:2]
    for name, _, rank, criteria in rules:
        if runner_up and name == said == runner_up[0][1]:
            return f"{said}; {_deciding_criterion(first, runner_up[0][0], rank, criteria)}"
    return said


def _deciding_criterion(first: SeriesInfo, second: SeriesInfo, rank, criteria: Sequence[str]) -> str:
    """'chosen over #6 as the later acquisition': the first position of the ranking key where the two differ."""
    for criterion, a, b in zip(criteria, rank(first), rank(second)):
        if a != b:
            return f"chosen over {second.label()} {criterion}"
    return f"chosen over {second.label()}, which ranks the same (the first found)"


def _find_number(study: Study, role: str, number: int) -> SeriesInfo:
    matches = study.by_number(number)
    if not matches:
        raise InputError(f"--series {role}={number}: the study has no series number {number}; it holds "
                         f"{len(study.series)} series: {study_listing(study)}")
    if len(matches) > 1:
        raise InputError(f"--series {role}={number}: {len(matches)} series have number {number} "
                         f"({', '.join(s.summary() for s in matches)}); series numbers must be unique to choose one")
    return matches[0]


def _override(study: Study, role: str, number: int, ranked: List[Tuple[SeriesInfo, str]]) -> Pick:
    series = _find_number(study, role, number)
    if not is_single_volume(series):
        raise InputError(f"--series {role}={number}: {series.summary()} holds {series.num_files} images at "
                         f"{series.num_positions} slice positions (several time points, b-values or echoes); "
                         "expected a single-volume series"
                         + (" (choose DCE frames with --series dce=N and --early-time/--late-time)"
                            if role.startswith("dce") else ""))
    lost = [(s, rule) for s, rule in ranked if s.uid != series.uid]
    return Pick(role, series, series.volumes()[0], f"chosen with --series {role}={number}", lost)


def _choose_dce(study: Study, dce_all: List[DceSeries], number) -> Optional[DceSeries]:
    if number is None:
        return dce_all[0] if dce_all else None
    series = _find_number(study, "dce", number)
    for dce in dce_all:
        if any(s.uid == series.uid for s in dce.series):
            return dce
    raise InputError(f"--series dce={number}: {series.summary()} is not part of a DCE series (a dynamic series "
                     f"with ≥ {DCE_MIN_FRAMES} time points, or ≥ {DCE_MIN_FRAMES} series of one dynamic protocol)")


def _t1_from_dce(dce: Optional[DceSeries], read, ranked_lost, chosen: bool = False,
                 untimed: str = "") -> Tuple[Optional[Pick], str]:
    """The last DCE frame before contrast arrival, or (None, why not). ``chosen``: asked for with
    ``--series t1pre=dce`` (the rule then says so, not that the study has no T1-pre series); ``untimed``: why a
    dynamic series of the study is no usable DCE (:func:`unusable_dynamic`)."""
    if dce is None:
        return None, untimed or "the study has no DCE series"
    find_arrival(dce, read)
    if dce.arrival_index is None:
        return None, f"no contrast arrival visible on the mean curve of the DCE series {dce.label()}"
    if dce.arrival_index < 1:  # index −1 would be the last, most enhanced frame
        return None, (f"the mean curve of the DCE series {dce.label()} rises from its first frame: no frame before "
                      "contrast arrival")
    if dce.arrival_index - 1 in dce.incomplete:
        return None, (f"the DCE's last frame before contrast arrival is incomplete: "
                      f"{dce.incomplete_text(dce.arrival_index - 1)}; expected it whole: restore the missing files, or "
                      "give the T1-pre as --t1pre FILE")
    rule = (f"last DCE frame before contrast arrival (mean DCE curve rises from frame {dce.arrival_index}; "
            + ("chosen with --series t1pre=dce)" if chosen else "no pre-contrast T1 gradient echo series)"))
    return _last_pre_arrival_frame(dce, "t1pre", rule, ranked_lost), ""


def _last_pre_arrival_frame(dce: DceSeries, role: str, rule: str, lost=()) -> Pick:
    """The DCE's last frame before contrast arrival (``dce.arrival_index`` ≥ 1) as the pick of ``role``, with its
    time and its time after arrival: the T1-pre taken from the DCE, or the acquired DCE's pre-contrast frame."""
    index = dce.arrival_index - 1
    series, volume = dce.frames[index]
    pick = Pick(role, series, volume, rule, list(lost), frame_index=index,
                time_s=None if dce.times_s is None else dce.times_s[index])
    if dce.times_s is not None:
        pick.after_arrival_s = pick.time_s - dce.arrival_time_s
    return pick


def _dce_baseline(dce: DceSeries, t1pre: Optional[Pick], read) -> Tuple[Optional[Pick], str]:
    """The acquired DCE's last frame before contrast arrival, where the T1-pre is not a frame of the DCE series
    (a VIBE, or a file): (pick or None, a note saying why there is none, or ""). Another sequence or receiver gain
    puts the DCE on another intensity scale than the T1-pre, and the synthesis is on the T1-pre's; this frame, free
    of contrast, gives the DCE's scale (pipeline.acquired_scale). Reads every DCE frame once (the mean curve).
    :class:`InputError` where that frame is incomplete (:attr:`DceSeries.incomplete`): the evaluation needs it."""
    if t1pre is not None and t1pre.series.uid in {s.uid for s in dce.series} and t1pre.frame_index is not None:
        return None, ""  # the T1-pre is the DCE's own pre-contrast frame: one scale already
    try:
        find_arrival(dce, read)
    except InputError as exc:  # an unreadable frame the synthesis does not need must not stop it
        return None, (f"the DCE frames could not all be read to find its pre-contrast frame ({exc}): the acquired "
                      "DCE is compared with the synthesis on its own intensity scale")
    if dce.arrival_index is None or dce.arrival_index < 1:
        why = ("no contrast arrival on its mean curve" if dce.arrival_index is None else
               "its mean curve rises from the first frame: no frame before it")
        return None, (f"no pre-contrast frame of the DCE series found ({why}): the acquired DCE is compared with the "
                      "synthesis on its own intensity scale")
    if dce.arrival_index - 1 in dce.incomplete:  # the evaluation needs it: refused, not replaced by another frame
        raise InputError(f"DCE baseline: the acquired DCE's last frame before contrast arrival, which puts it on the "
                         f"T1-pre's intensity scale for the evaluation, is incomplete: "
                         f"{dce.incomplete_text(dce.arrival_index - 1)}; expected it whole: restore the missing "
                         "files, or give the acquired frames as --dce-early/--dce-late files (compared on their own "
                         "intensity scale)")
    rule = (f"last DCE frame before contrast arrival (mean DCE curve rises from frame {dce.arrival_index}): the "
            "acquired DCE's intensity scale, for the evaluation only (not a model input)")
    return _last_pre_arrival_frame(dce, ACQUIRED_BASELINE, rule), ""


def _pick_dce_frames(dce: DceSeries, dce_all: List[DceSeries], picks: Dict[str, Pick], early_time, late_time,
                     read) -> None:
    """dce_early/dce_late: the middle and last frames (paper), or the frames closest to the given times after
    arrival."""
    n = len(dce.frames)
    lost = [(other.frames[0][0], f"DCE series {other.label()}") for other in dce_all if other is not dce]
    if early_time is not None or late_time is not None:
        if dce.times_s is None:
            raise InputError(f"--early-time/--late-time: the DCE series {dce.label()} has no frame times in its "
                             "headers (TriggerTime, AcquisitionTime, ContentTime or TT= in the description); "
                             "leave them out to use the middle and last time points")
        find_arrival(dce, read)
        if dce.arrival_index is None:
            raise InputError(f"--early-time/--late-time: no contrast arrival visible on the mean curve of the DCE "
                             f"series {dce.label()}")
    arrival = dce.arrival_time_s
    for role, wanted, default_index, default_rule in (
            ("dce_early", early_time, n // 2, "middle time point of the DCE series (paper)"),
            ("dce_late", late_time, n - 1, "last time point of the DCE series (paper)")):
        if wanted is None:
            index, rule = default_index, default_rule
        else:
            if not np.isfinite(wanted) or wanted < 0:  # NaN and inf would pick frame 0, a pre-contrast frame
                raise InputError(f"--{role.replace('dce_', '')}-time {wanted:g}: expected seconds after contrast "
                                 "arrival (a finite number ≥ 0)")
            after = np.asarray(dce.times_s) - arrival
            step = float(np.median(np.diff(dce.times_s))) if n > 1 else 0.0
            if wanted > after[-1] + step:  # the last frame would stand in for a time never acquired
                raise InputError(f"--{role.replace('dce_', '')}-time {wanted:g}: the DCE series {dce.label()} ends "
                                 f"{after[-1]:.0f} s after contrast arrival; expected seconds within 0–"
                                 f"{after[-1]:.0f}")
            index = int(np.argmin(np.abs(after - wanted)))
            rule = (f"DCE frame closest to {wanted:g} s after contrast arrival (arrival at t={arrival:.1f} s on the "
                    "mean curve)")
        if index in dce.incomplete:
            raise InputError(f"{ROLE_NAMES[role]} ({rule}): {dce.incomplete_text(index)}; {INCOMPLETE_HINT}")
        series, volume = dce.frames[index]
        time_s = None if dce.times_s is None else dce.times_s[index]
        picks[role] = Pick(role, series, volume, rule, list(lost), frame_index=index, time_s=time_s,
                           after_arrival_s=None if (time_s is None or arrival is None) else time_s - arrival)


# What each required role needs (error messages, the dataset manifest).
ROLE_NEEDS = {
    "t2w": "a T2-weighted TSE series (axial preferred)",
    "adc": "an ADC map (ImageType ADC, or 'ADC' in the description)",
    "pd": f"a PD reference scan (e.g. 'tfl3d PD ref') or a 3D gradient echo (VIBE) at flip ≤ {PD_MAX_FLIP_DEG:g}°",
    "t1pre": f"a pre-contrast 3D gradient echo (VIBE) at flip ≥ {T1_MIN_FLIP_DEG:g}°, or a DCE series with "
             "frames before contrast arrival",
}


def missing_roles_text(missing: Sequence[str]) -> str:
    """``no T1-pre found (expected ...); no ADC found (expected ...)`` for the given required roles."""
    return "no " + "; no ".join(f"{ROLE_NAMES[r]} found (expected {ROLE_NEEDS[r]})" for r in missing)


def _missing_message(study: Study, missing: List[str], problems: List[str], dce: Optional[DceSeries],
                     untimed: str = "", skipped_series: Sequence[Tuple[SeriesInfo, str]] = ()) -> str:
    parts = []
    if missing:
        parts.append(missing_roles_text(missing))
    parts.extend(problems)
    where = f"patient {study.patient_id or '?'}, study {study.study_uid}"
    dce_text = f"DCE: {dce.label()}" if dce is not None else "DCE: none" + (f" ({untimed})" if untimed else "")
    return (f"--study {study.root}: " + "; ".join(parts) + f" ({where}). Use --series ROLE=NUMBER to name a "
            f"series, or give the inputs as files. Found {len(study.series)} series ({dce_text}): "
            + study_listing(study) + "".join(f"; skipped {s.label()}: {why}" for s, why in skipped_series))


def study_listing(study: Study) -> str:
    """Every series on one line (the CLI's error convention), a DCE stored as one series per time point
    collapsed into one entry."""
    grouped = {}
    for dce in find_dce_series(study):
        if len(dce.series) > 1:
            for s in dce.series:
                grouped[s.uid] = dce
    entries, done = [], set()
    for s in study.series:
        dce = grouped.get(s.uid)
        if dce is None:
            entries.append(s.summary())
        elif id(dce) not in done:
            done.add(id(dce))
            entries.append(f"DCE {dce.label()}")
    return "; ".join(entries)
