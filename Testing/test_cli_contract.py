"""What the command layer promises (found by a mutation audit, session 53): EPERM is a permission error line, the
demo's default sample count is synthesize's, `preprocess --no-register` keeps the scanner alignment, the NIfTI label
keeps sampler, steps and seed within 79 characters whatever the warnings, and a model argument's dotted stem or
.json card resolves to its weights."""

import errno
import json

import pytest
import SimpleITK as sitk

from DCEDiffLib.cli import build_parser, main, resource_failure_words
from DCEDiffLib.model_registry import SAMPLE_CASE_DIR, resolve_model
from DCEDiffLib.working_grid import field_of_view_center

CASE = SAMPLE_CASE_DIR


# ------------------------------------------------------------------------------------------------

def test_an_operation_not_permitted_is_a_permission_error_line_too():
    """EPERM (e.g. chmod/rename on a foreign mount) is a machine failure like EACCES, not a traceback."""
    words = resource_failure_words(PermissionError(errno.EPERM, "Operation not permitted", "/mnt/out"))
    assert words is not None
    assert words.startswith("permission denied (/mnt/out)") and "Operation not permitted" in words


def test_a_full_disk_without_a_file_name_names_the_output_folder():
    """A full disk hit inside a write raises ENOSPC without a file name: the line said only 'no space left on the
    disk' (found by a fresh-user audit); it now names the command's output folder, and a file name where it has one."""
    bare = OSError(errno.ENOSPC, "No space left on device")
    words = resource_failure_words(bare, "/mnt/small/out")
    assert words.startswith("no space left on the disk (writing /mnt/small/out)")
    named = OSError(errno.ENOSPC, "No space left on device", "/mnt/small/out/early.nii.gz")
    assert resource_failure_words(named, "/mnt/small/out").startswith("no space left on the disk (/mnt/small/out/early")
    assert resource_failure_words(bare).startswith("no space left on the disk:")


def test_a_command_that_fills_the_disk_names_its_output_folder(tmp_path, monkeypatch, capsys):
    """main() hands the command's --out to resource_failure_words: `dcediff phantom` whose write hits a full disk
    (ENOSPC without a file name) ends with 'no space left on the disk (writing OUT)'. Stand-in for the full disk:
    the dataset writer raises that OSError. Mutation audit: kills the output folder not passed by main()."""
    import DCEDiffLib.phantom

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DCEDiffLib.phantom, "generate_dataset", full_disk)
    out = tmp_path / "cases"
    assert main(["phantom", "--out", str(out)]) == 2
    assert f"no space left on the disk (writing {out})" in capsys.readouterr().err


def test_a_library_that_cannot_be_mapped_under_a_memory_limit_is_out_of_memory():
    """Under `ulimit -v` (a batch system's h_vmem) importing torch fails with an ImportError from the loader: said
    as out of memory, one line; another ImportError stays what it is (a traceback)."""
    words = resource_failure_words(ImportError("libtorch_cpu.so: failed to map segment from shared object"))
    assert words is not None and words.startswith("out of memory") and "libtorch_cpu.so" in words
    assert resource_failure_words(ImportError("No module named 'torch'")) is None


def test_a_bad_warm_start_is_refused_before_any_slow_work():
    """pipeline.check_options refuses what cannot be used 'before any slow work' — the warm start too."""
    from DCEDiffLib.errors import InputError
    from DCEDiffLib.pipeline import check_options

    for bad in ("foo", "2", "-0.5"):
        with pytest.raises(InputError, match="warm start"):
            check_options("dpmpp", 5, 1, 0, bad)
    for good in ("auto", "none", "0.5"):
        check_options("dpmpp", 5, 1, 0, good)


def test_the_demo_averages_as_many_samples_as_synthesize_by_default():
    """`dcediff demo --samples` help: 'default 1, as dcediff synthesize'."""
    parser = build_parser()
    demo = parser.parse_args(["demo", "--out", "x"])
    synth = parser.parse_args(["synthesize", "--out", "x"])
    assert demo.samples == 1 and synth.samples == 1


@pytest.mark.parametrize("command", [
    ["phantom", "--cases", "1", "--no-dce-series"],
    ["demo", "--precision", "fp32"],
], ids=["phantom", "demo"])
def test_with_progress_lines_stdout_holds_only_progress_lines(tmp_path, capsys, command):
    """--progress-lines help: 'stdout then holds only those lines'. `dcediff phantom` and `dcediff demo` printed
    their closing summary on stdout too (found by a fresh-user audit); it now goes to stderr, as `dataset`'s does."""
    from DCEDiffLib.progress import parse_progress_line

    assert main(command + ["--out", str(tmp_path / "out"), "--progress-lines"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines and all(parse_progress_line(line) is not None for line in lines), lines
    assert f"DCEDiff {command[0]}" in captured.err          # the summary is still printed, on stderr


# ------------------------------------------------------------------------------------------------

def test_preprocess_no_register_keeps_the_scanner_alignment(tmp_path, capsys):
    centre = ",".join(f"{c:.4f}" for c in field_of_view_center(sitk.ReadImage(str(CASE / "t2w.nii.gz"))))
    out = tmp_path / "pre"
    argv = ["preprocess", *[x for m in ("t2w", "pd", "adc", "t1pre") for x in (f"--{m}", str(CASE / f"{m}.nii.gz"))],
            "--no-register", f"--center={centre}", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["registration"]) >= {"pd", "adc", "t1pre"}
    for modality, result in summary["registration"].items():
        assert result["applied"] is False, modality
        assert "skipped" in result["reason"], (modality, result["reason"])


# ------------------------------------------------------------------------------------------------

def test_nifti_label_with_a_warning_still_keeps_seed_within_79_characters():
    from DCEDiffLib.pipeline import provenance_descrip

    provenance = {"model": "a-very-long-model-name-from-a-hyperparameter-sweep-run-0042-ema",
                  "sampler": "dpmpp", "steps": 5, "seed": 7}
    text = provenance_descrip(provenance, warning="OOD-WARNING")
    assert len(text) <= 79 and text.isascii()
    assert text.startswith("SYNTHETIC OOD-WARNING ")
    assert text.endswith(" sampler=dpmpp steps=5 seed=7")


# ------------------------------------------------------------------------------------------------

def test_resolve_model_keeps_a_dotted_stem_and_maps_a_card_to_its_weights(tmp_path):
    weights = tmp_path / "model_v1.5.safetensors"
    weights.write_bytes(b"x")
    (tmp_path / "model_v1.5.json").write_text("{}", encoding="utf-8")
    assert resolve_model(str(tmp_path / "model_v1.5")) == weights          # a stem with a dot
    assert resolve_model(str(tmp_path / "model_v1.5.json")) == weights     # the card given
    assert resolve_model(str(weights)) == weights                           # the weights given


def test_nifti_label_with_two_warnings_and_the_longest_seed_keeps_every_setting():
    """The promise holds at its extreme: both warnings, a long model name, steps 1000 and a seed of 2^63 - 1."""
    from DCEDiffLib.pipeline import provenance_descrip

    seed = 2 ** 63 - 1
    for warning, seed_value in (("OOD-WARNING NO-PD", 123456), ("OOD-WARNING NO-PD", seed)):
        label = provenance_descrip({"model": "a" * 64, "sampler": "dpmpp", "steps": 1000, "seed": seed_value},
                                   warning=warning)
        assert len(label) <= 79 and label.isascii() and label.startswith(f"SYNTHETIC {warning} ")
        assert label.endswith(f"seed={seed_value}") and "dpmpp" in label and "1000" in label, label

