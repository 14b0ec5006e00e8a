"""Training: patient split, config checks, step-indexed batches, EMA, checkpoints and exact resume."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from DCEDiffLib.errors import InputError
from DCEDiffLib.normalization import NormParams
from DCEDiffLib.training import distributed
from DCEDiffLib.training.batches import SliceBatches
from DCEDiffLib.training.case_data import CaseArrays
from DCEDiffLib.training.config import PAPER_RECIPE, condition_modalities, load_config, make_config
from DCEDiffLib.training.ema import EMA
from DCEDiffLib.training.emulated_bf16 import emulated_bf16_warning
from DCEDiffLib.training.lr_schedule import learning_rate
from DCEDiffLib.training.split import split_cases
from DCEDiffLib.training.trainer import Trainer


def tiny_case(name: str, seed: int, size: int = 32, slices: int = 4) -> CaseArrays:
    """A small case whose targets depend on the conditions (so there is something to learn)."""
    rng = np.random.default_rng(seed)
    cond = rng.uniform(-1, 1, (4, slices, size, size)).astype(np.float32)
    early = np.clip(0.5 * cond[3] + 0.3 * (cond[2] < 0), -1, 1)
    late = np.clip(0.7 * cond[3] + 0.2, -1, 1)
    norm = {m: NormParams(0.0, 100.0, 0.5, 99.5) for m in ("t2w", "pd", "adc", "t1pre", "dce_early", "dce_late")}
    return CaseArrays(name, cond, np.stack([early, late]).astype(np.float32), None, None, norm, {})


def tiny_config(**overrides):
    base = {"model": {"preset": "tiny"}, "iterations": 12, "batch_size": 2, "crop_size": 16, "warmup_steps": 4,
            "checkpoint_every": 6, "validate_every": 6, "validation_slices": 4, "sample_image_every": 0,
            "log_every": 3, "ema_decay": 0.99}
    base.update(overrides)
    return make_config(base)


def as_older_checkpoint(checkpoint_dir):
    """Make ``checkpoint_dir/last.*`` look as a checkpoint of an older version does: no configuration recorded in
    its JSON, and no copy of that JSON inside its tensors file (the resume and its recipe check read that copy)."""
    from safetensors.torch import load_file, save_file

    meta_path, tensor_path = checkpoint_dir / "last.json", checkpoint_dir / "last.safetensors"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["config"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    save_file(load_file(str(tensor_path)), str(tensor_path))  # the same tensors, without the stored JSON


def make_trainer(tmp_path, config, name="run"):
    cases = [tiny_case(f"p{i}", i) for i in range(4)]
    data = {"split": {"train": ["p0", "p1", "p2"], "validation": ["p3"], "test": []},
            "train": cases[:3], "validation": cases[3:]}
    return Trainer(config, tmp_path / name, data, distributed.setup("cpu"), show_progress=False)


def resumed_run(make, steps: int) -> Trainer:
    """A run interrupted after ``steps`` (at its checkpoint) and resumed to the end by a new trainer; ``make()``
    builds a trainer on the run's folder. Returns the resumed trainer."""
    make().run(max_steps=steps)
    second = make()
    assert second.resume() and second.step == steps
    second.run()
    return second


def assert_same_training_state(a: Trainer, b: Trainer) -> None:
    """The two trainers hold bit-identical network weights and EMA shadows."""
    for (name, x), (_, y) in zip(a.network.state_dict().items(), b.network.state_dict().items()):
        assert torch.equal(x, y), name
    for name in a.ema.shadow:
        assert torch.equal(a.ema.shadow[name], b.ema.shadow[name]), name


def test_split_is_by_patient_reproducible_and_complete():
    names = [f"case_{i:03d}" for i in range(23)]
    a, b = split_cases(names, (0.8, 0.1, 0.1), seed=3), split_cases(names, (0.8, 0.1, 0.1), seed=3)
    assert a == b
    sets = [set(a[k]) for k in ("train", "validation", "test")]
    assert sets[0] | sets[1] | sets[2] == set(names)
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert all(len(s) >= 1 for s in sets)
    assert split_cases(names, (0.8, 0.1, 0.1), seed=4) != a
    with pytest.raises(InputError, match="at least 2 cases"):
        split_cases(["only"], seed=0)


@pytest.mark.parametrize("count", [2, 3, 4, 5, 9])
def test_small_splits_always_train_and_validate(count):
    """Issue 16: 2 cases split 0.8/0.1/0.1 gave an empty training set. From 2 cases on, training and validation
    each get a case; the test set one from 3 cases on; the same names and seed give the same split as before."""
    from DCEDiffLib.training.split import describe_split

    names = [f"case_{i:03d}" for i in range(count)]
    split = split_cases(names, (0.8, 0.1, 0.1), seed=0)
    assert len(split["train"]) >= 1 and len(split["validation"]) >= 1
    assert len(split["test"]) == (0 if count == 2 else 1)
    assert sorted(split["train"] + split["validation"] + split["test"]) == names
    line = describe_split(split)
    assert f"{len(split['train'])} training" in line and ("no test case" in line) == (count == 2)
    with pytest.raises(InputError, match="non-zero training fraction"):
        split_cases(names, (0.0, 0.5, 0.5))


def test_config_defaults_are_the_paper_recipe_and_typos_are_refused(tmp_path):
    config = make_config()
    assert config["lr"] == 1e-4 and config["warmup_steps"] == 10000 and config["iterations"] == 260000
    assert config["model"]["preset"] == "paper" and config["objective"] == "diffusion"
    with pytest.raises(InputError, match="unknown key 'learning_rate'"):
        make_config({"learning_rate": 1})
    with pytest.raises(InputError, match="cannot drop"):
        make_config({"without": ["dwi"]})
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"without": ["adc"], "iterations": 5}), encoding="utf-8")
    loaded = load_config(path)
    assert condition_modalities(loaded) == ["t2w", "pd", "t1pre"] and loaded["iterations"] == 5
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        load_config(path)
    assert set(PAPER_RECIPE) == set(config)


def test_learning_rate_warms_up_linearly():
    config = make_config({"warmup_steps": 10, "lr": 1e-3})
    assert learning_rate(config, 0) == pytest.approx(1e-4)
    assert learning_rate(config, 4) == pytest.approx(5e-4)
    assert learning_rate(config, 9) == pytest.approx(1e-3) and learning_rate(config, 500) == pytest.approx(1e-3)


def test_cosine_schedule_anneals_from_lr_to_zero_after_the_warm_up():
    config = make_config({"warmup_steps": 10, "lr": 1e-3, "iterations": 110, "lr_schedule": "cosine"})
    assert learning_rate(config, 4) == pytest.approx(5e-4)              # the warm-up is unchanged
    assert learning_rate(config, 9) == pytest.approx(1e-3)
    assert learning_rate(config, 59) == pytest.approx(5e-4)             # halfway: half the rate
    assert learning_rate(config, 109) == pytest.approx(0.0, abs=1e-12)  # the last step: nothing left
    rates = [learning_rate(config, step) for step in range(9, 110)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    with pytest.raises(InputError, match="lr_schedule 'linear'"):
        make_config({"lr_schedule": "linear"})


def test_batches_depend_only_on_step_and_ranks_see_disjoint_items():
    cases = [tiny_case(f"p{i}", i) for i in range(3)]
    a = SliceBatches(cases, 3, 16, seed=5)
    b = SliceBatches(cases, 3, 16, seed=5)
    for step in (0, 7, 3):
        ca, ta = a.batch(step)
        cb, tb = b.batch(step)
        assert torch.equal(ca, cb) and torch.equal(ta, tb)
    assert ca.shape == (3, 4, 16, 16) and ta.shape == (3, 2, 16, 16)
    rank0 = SliceBatches(cases, 2, 16, seed=5, rank=0, world_size=2)
    rank1 = SliceBatches(cases, 2, 16, seed=5, rank=1, world_size=2)
    n = len(rank0.items)  # one epoch = n items split between the two ranks
    seen0 = [i for s in range(n // 4) for i in rank0.item_indices(s)]
    seen1 = [i for s in range(n // 4) for i in rank1.item_indices(s)]
    assert not set(seen0) & set(seen1)
    dropped = SliceBatches(cases, 2, 16, seed=5, conditions_kept=("t2w", "pd", "t1pre"))
    assert dropped.batch(0)[0].shape[1] == 3


def test_flip_is_left_right_only():
    case = tiny_case("p", 0, size=16, slices=1)
    batches = SliceBatches([case], 1, 16, seed=0, flip_left_right=True)
    original = torch.from_numpy(np.clip(case.conditions[:, 0], -1, 1))
    seen = set()
    for step in range(20):
        cond = batches.batch(step)[0][0]
        if torch.equal(cond, original):
            seen.add("same")
        elif torch.equal(cond, original.flip(-1)):
            seen.add("lr")
        else:
            pytest.fail("a batch was neither the slice nor its left-right mirror")
    assert seen == {"same", "lr"}


def test_ema_warmup_and_average():
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # d = min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1 - d))


def test_training_writes_outputs_and_resume_is_exact(tmp_path):
    config = tiny_config()
    full = make_trainer(tmp_path, config, "full")
    summary = full.run()
    assert summary["steps"] == 12
    out = tmp_path / "full"
    for name in ("model.safetensors", "model.json", "best.safetensors", "best.json", "log.csv",
                 "checkpoints/last.safetensors", "checkpoints/last.json", "config.json"):
        assert (out / name).is_file(), name
    card = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert card["conditions"] == ["t2w", "pd", "adc", "t1pre"] and card["training"]["steps"] == 12
    # interrupted after 6 steps (checkpoint), resumed in a new trainer: identical weights at the end
    assert_same_training_state(full, resumed_run(lambda: make_trainer(tmp_path, config, "resumed"), 6))
    with open(tmp_path / "resumed" / "log.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["3", "6", "9", "12"]
    seconds = [float(r["seconds"]) for r in rows]  # the run's training time: it goes on across the resume
    assert all(later > earlier for earlier, later in zip(seconds, seconds[1:])), seconds


def test_resume_with_another_recipe_is_refused_and_run_control_may_change(tmp_path):
    """A checkpoint continues only the recipe it was trained with: another objective, crop or network would train
    one model with two recipes while its card names only the second."""
    config = tiny_config()
    make_trainer(tmp_path, config).run(max_steps=6)
    card = json.loads((tmp_path / "run" / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["processes"] == [1] and card["training"]["global_batch_size"] == 2
    for change, named in (({"objective": "regression"}, "objective: 'diffusion' there, 'regression' now"),
                          ({"crop_size": 24}, "crop_size: 16 there, 24 now"),
                          ({"model": {"preset": "cpu"}}, "model: {'preset': 'tiny'} there"),
                          ({"without": ["adc"]}, "without: [] there, ['adc'] now")):
        with pytest.raises(InputError, match="trained with another recipe") as info:
            make_trainer(tmp_path, tiny_config(**change)).resume()
        assert named in str(info.value) and "--fresh" in str(info.value)
    # how long and how often it logs or checkpoints are not the recipe, nor where init_weights points (a resumed run
    # takes its weights from the checkpoint)
    longer = make_trainer(tmp_path, tiny_config(iterations=18, log_every=2, checkpoint_every=9))
    assert longer.resume() and longer.step == 6
    # a curriculum's next stage, on purpose: resumed, and the card says what changed at which step
    staged = make_trainer(tmp_path, tiny_config(crop_size=24, lr=5e-5))
    assert staged.resume(change_recipe=True) and staged.step == 6
    # best.* is the best of the new stage: the first stage's validation loss measured another recipe
    assert staged.best_val == math.inf and staged.best_lesion_r == -math.inf
    staged.run()
    card = json.loads((tmp_path / "run" / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["recipe_changes"] == [{"step": 6, "changes": {"crop_size": [16, 24], "lr": [1e-4, 5e-5]}}]


def test_a_checkpoint_of_another_network_is_one_clear_error(tmp_path):
    """A checkpoint saved before its configuration was recorded: the network mismatch is still one line."""
    from DCEDiffLib.training.checkpoint import load_checkpoint

    make_trainer(tmp_path, tiny_config()).run(max_steps=6)
    meta_path = tmp_path / "run" / "checkpoints" / "last.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["config"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    other = make_trainer(tmp_path, tiny_config(without=["adc"]), name="other")
    with pytest.raises(InputError, match="holds another network than this run builds"):
        load_checkpoint(meta_path.with_suffix(""), other.network, other.ema, other.optimizer)


def test_a_crash_between_the_two_checkpoint_writes_resumes_from_the_tensors_own_step(tmp_path):
    """The tensors are written first, the JSON beside them last: a kill in between left step-12 tensors with the
    step-6 JSON, and the run resumed as step 6 with step-12 weights. The tensors file now holds its own JSON."""
    full = make_trainer(tmp_path, tiny_config(), "full")
    full.run(max_steps=6)
    meta_path = tmp_path / "full" / "checkpoints" / "last.json"
    step_six = meta_path.read_text(encoding="utf-8")
    full.run(max_steps=6)  # the step-12 checkpoint
    meta_path.write_text(step_six, encoding="utf-8")  # as if killed before the JSON of step 12 was written
    resumed = make_trainer(tmp_path, tiny_config(), "full")
    assert resumed.resume() and resumed.step == 12
    assert json.loads(meta_path.read_text(encoding="utf-8"))["step"] == 12  # the stale JSON is mended
    assert_same_training_state(full, resumed)


def test_a_log_with_a_merged_row_resumes_without_losing_the_good_rows(tmp_path):
    """Two writers once merged two rows into one; the next resume crashed in csv and had already emptied the log."""
    make_trainer(tmp_path, tiny_config()).run(max_steps=6)
    log = tmp_path / "run" / "log.csv"
    good = log.read_text(encoding="utf-8")
    log.write_text(good + "135,0.5,0.001,,,,13.79,12.46715150,0.606,,,,15.48,8.88\r\n", encoding="utf-8")
    resumed = make_trainer(tmp_path, tiny_config())
    assert resumed.resume() and resumed.step == 6
    resumed.run()
    with open(log, encoding="utf-8") as handle:
        steps = [row["step"] for row in csv.DictReader(handle)]
    assert steps == ["3", "6", "9", "12"]


def test_a_region_weight_for_no_label_is_refused():
    labelled = CaseArrays("a", tiny_case("a", 1).conditions, tiny_case("a", 1).targets,
                          np.zeros((4, 32, 32), np.int16), {"lesion": 7, "bladder": 4}, tiny_case("a", 1).norm, {})
    SliceBatches([labelled], 2, 16, seed=0, region_weights={"lesion": 3.0})
    with pytest.raises(InputError, match=r"region_weights \['lesoin'\]: not a label.*'lesion'.*'urine'"):
        SliceBatches([labelled], 2, 16, seed=0, region_weights={"lesoin": 30.0})


def test_loss_decreases_on_a_learnable_tiny_problem(tmp_path):
    config = tiny_config(iterations=150, lr=2e-3, warmup_steps=10, validate_every=150, checkpoint_every=150,
                         log_every=25, objective="regression")
    trainer = make_trainer(tmp_path, config)
    before = trainer.validation_loss()
    trainer.run()
    after = trainer.validation_loss()
    assert after < 0.7 * before, (before, after)


def test_ablation_model_has_fewer_input_channels(tmp_path):
    trainer = make_trainer(tmp_path, tiny_config(iterations=2, without=["adc"]))
    trainer.run()
    card = json.loads((tmp_path / "run" / "model.json").read_text(encoding="utf-8"))
    assert card["conditions"] == ["t2w", "pd", "t1pre"]


def test_lesion_slice_share_draws_crops_that_contain_a_lesion():
    from DCEDiffLib.training.batches import SliceBatches

    def with_lesion(name, seed, lesion_slice):
        case = tiny_case(name, seed, size=48, slices=8)
        labels = np.zeros(case.conditions.shape[1:], np.int16)
        labels[lesion_slice, 40:43, 3:6] = 7  # a small lesion near a corner: random 16-crops rarely reach it
        return CaseArrays(name, case.conditions, case.targets, labels, {"lesion": 7}, case.norm, {})

    cases = [with_lesion("a", 1, 2), with_lesion("b", 2, 5), tiny_case("c", 3, size=48, slices=8)]

    def lesion_crop_share(share):
        batches = SliceBatches(cases, 4, 16, seed=0, region_weights={"lesion": 5.0}, lesion_slice_share=share)
        hits = [float((w > 1).any()) for step in range(60) for w in batches.weighted_batch(step)[2]]
        return float(np.mean(hits))

    assert lesion_crop_share(0.0) < 0.1
    assert 0.35 < lesion_crop_share(0.5) < 0.7
    with pytest.raises(InputError, match="lesion_slice_share"):
        make_config({"lesion_slice_share": 2})


def test_loading_cases_in_the_training_process_keeps_its_torch_threads(tmp_path):
    """With one preprocessing worker the cases load in the training process itself; the one-thread limit of the
    worker processes must not stay behind there (it once made every later training step run on one core)."""
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
    from DCEDiffLib.training.case_loading import _load_parallel

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs with OMP_NUM_THREADS=1: a limit to 1 must be visible
    try:
        _load_parallel([SAMPLE_CASE_DIR], tmp_path / "cache", workers=1, report=None)
        assert torch.get_num_threads() == 2
        assert any((tmp_path / "cache").iterdir())  # the case was really preprocessed and cached
    finally:
        torch.set_num_threads(before)


def test_a_time_limited_run_stops_early_and_ends_as_a_finished_one(tmp_path):
    """``run(max_seconds=...)`` (``dcediff train --max-minutes``, for a GPU lent for a fixed time) stops at the first
    step past the limit, then validates, checkpoints and exports as at the last step, and resumes from there to the
    same weights an uninterrupted run reaches."""
    config = tiny_config()
    summary = make_trainer(tmp_path, config).run(max_seconds=0.0)
    assert summary["steps"] == 1 and summary["stopped_by_time"]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    resumed = make_trainer(tmp_path, config)
    assert resumed.resume() and resumed.step == 1
    assert not resumed.run()["stopped_by_time"] and resumed.step == config["iterations"]
    whole = make_trainer(tmp_path, config, name="whole")
    whole.run()
    assert_same_training_state(resumed, whole)
    assert not whole.run(max_seconds=1e6)["stopped_by_time"]  # already at iterations: nothing to stop


def test_train_command_refuses_a_non_positive_time_limit(tmp_path, capsys):
    from DCEDiffLib.cli import main

    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--max-minutes", "0"]) != 0
    assert "--max-minutes 0.0: expected a positive number of minutes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_batches_built_by_worker_processes_train_bit_identically(tmp_path):
    """``loader_workers`` (training/step_loader.py, for a GPU whose steps outrun one core building crops): worker
    processes build the same step-addressed batches, so the run ends with the same weights as one without them, and a
    time-stopped run ends its workers."""
    plain = make_trainer(tmp_path, tiny_config(), name="plain")
    plain.run()
    with_workers = make_trainer(tmp_path, tiny_config(loader_workers=2), name="workers")
    with_workers.run()
    assert_same_training_state(plain, with_workers)
    stopped = make_trainer(tmp_path, tiny_config(loader_workers=2), name="stopped")
    assert stopped.run(max_seconds=0.0)["steps"] == 1
    import multiprocessing

    assert not multiprocessing.active_children()


def test_step_loader_refuses_an_unknown_batch_kind():
    from DCEDiffLib.training.step_loader import batch_for_step

    with pytest.raises(ValueError, match="unknown batch kind 'lesions'"):
        batch_for_step(None, "lesions", 0)


def test_bf16_training_on_a_cpu_without_native_bf16_is_warned_about():
    # bf16 autocast emulated on a CPU took more than 15 times fp32's time for a residual fine-tune (2026-12-04)
    bf16 = make_config({"mixed_precision": "bf16"})
    warning = emulated_bf16_warning(bf16, "cpu", flags=["avx2", "avx512f"])
    assert warning and "bf16" in warning and "fp32" in warning
    assert emulated_bf16_warning(bf16, "cpu", flags=["avx512f", "avx512_bf16"]) is None
    assert emulated_bf16_warning(bf16, "cuda", flags=[]) is None
    assert emulated_bf16_warning(make_config({"mixed_precision": "auto"}), "cpu", flags=[]) is None


def test_a_training_case_without_acquired_dce_is_named_before_training(tmp_path):
    """A case folder without dce_early/dce_late in the data folder used to crash the first validation ('need at
    least one array to stack'); it is now refused by name, and a case that cannot be read names its folder."""
    from DCEDiffLib.model_registry import SAMPLE_CASE_DIR
    from DCEDiffLib.modalities import INPUT_MODALITIES
    from DCEDiffLib.preprocess import preprocess_case, write_preprocessed
    from DCEDiffLib.training.case_loading import _cache_one, load_split_cases

    inputs = {m: str(SAMPLE_CASE_DIR / f"{m}.nii.gz") for m in INPUT_MODALITIES}
    data = tmp_path / "data"
    write_preprocessed(preprocess_case(dict(inputs, dce_early=str(SAMPLE_CASE_DIR / "dce_early.nii.gz"),
                                            dce_late=str(SAMPLE_CASE_DIR / "dce_late.nii.gz")), register=False),
                       data / "with_dce")
    write_preprocessed(preprocess_case(inputs, register=False), data / "without_dce")
    ctx = distributed.DistContext(0, 1, 0, torch.device("cpu"))
    with pytest.raises(InputError, match=r"1 case\(s\) have no acquired DCE .*: without_dce; expected training"):
        load_split_cases(data, tmp_path / "run", {"split": [0.5, 0.5, 0.0], "split_seed": 0}, ctx)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "t2w.nii.gz").write_bytes(b"not an image")
    with pytest.raises(InputError, match=f"case folder {broken}: "):
        _cache_one(broken, tmp_path / "cache")


def _lesion_case(slices=6, size=32):
    from DCEDiffLib.training.case_data import CaseArrays

    rng = np.random.default_rng(0)
    conditions = rng.uniform(-0.5, 0.5, (4, slices, size, size)).astype(np.float32)
    targets = rng.uniform(-0.9, -0.5, (2, slices, size, size)).astype(np.float32)
    labels = np.zeros((slices, size, size), np.int16)
    labels[:, 6:26, 6:26] = 2
    labels[2, 3:6, 26:29] = 7          # one small lesion on one slice, near a corner of the gland
    return CaseArrays("lesion_case", conditions, targets, labels, {"peripheral_zone": 2, "lesion": 7}, {}, {})


def test_a_lesion_slice_share_of_one_crops_every_item_around_a_lesion():
    """batches.SliceBatches(lesion_slice_share=s): a share s of the crops is drawn from lesion slices, cropped
    around a lesion voxel ("foreground oversampling"). With s = 1 every crop contains the lesion (seen through the
    lesion's extra loss weight); with s = 0 (control) most do not: the lesion fills 9 voxels of one slice in six."""
    from DCEDiffLib.training.batches import SliceBatches

    case = _lesion_case()
    always = SliceBatches([case], 4, 16, seed=0, region_weights={"lesion": 3.0}, lesion_slice_share=1.0,
                          flip_left_right=False)
    never = SliceBatches([case], 4, 16, seed=0, region_weights={"lesion": 3.0}, lesion_slice_share=0.0,
                         flip_left_right=False)
    with_lesion = [bool((w > 1).any()) for step in range(10) for w in always.weighted_batch(step)[2]]
    without = [bool((w > 1).any()) for step in range(10) for w in never.weighted_batch(step)[2]]
    assert all(with_lesion)
    assert sum(without) < len(without) / 2


def test_best_checkpoint_is_the_lowest_logged_validation_loss(tmp_path):
    """best.safetensors|json is the checkpoint of 'lowest validation loss': its card's validation_loss and the
    run summary's best_validation_loss are the minimum of the val_loss column of log.csv (and the trainer's
    best_val, which a resume reads back from the checkpoint)."""
    import csv

    from test_training import make_trainer, tiny_config

    trainer = make_trainer(tmp_path, tiny_config(iterations=12, validate_every=3, checkpoint_every=6), "run")
    summary = trainer.run()
    with open(tmp_path / "run" / "log.csv", encoding="utf-8") as handle:
        logged = [float(r["val_loss"]) for r in csv.DictReader(handle) if r["val_loss"]]
    assert len(logged) == 4
    card = json.loads((tmp_path / "run" / "best.json").read_text(encoding="utf-8"))
    assert card["metrics"]["validation_loss"] == pytest.approx(min(logged))
    assert summary["best_validation_loss"] == pytest.approx(min(logged))
    assert trainer.best_val == pytest.approx(min(logged))
