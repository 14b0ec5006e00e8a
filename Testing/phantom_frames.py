"""A phantom case with fewer DCE frames, for tests that write it as a DICOM study (fewer files to write and scan)."""

import dataclasses
import json

import SimpleITK as sitk


def fewer_frames(case, step=8):
    """The case with every ``step``-th DCE frame only (the default keeps 5 of the generator's frames)."""
    keep = list(range(0, len(case.params["dce"]["frame_times_s"]), step))
    params = json.loads(json.dumps(case.params))
    params["dce"]["frame_times_s"] = [case.params["dce"]["frame_times_s"][i] for i in keep]
    return dataclasses.replace(case, params=params,
                               dce_series=sitk.JoinSeries([case.dce_series[:, :, :, i] for i in keep]))
