"""Rules of the training loop that follow from its documented design (a mutation audit's survivors): the EMA is read
out, updated and warmed up as documented, a resume refuses a changed seed, EMA or mean model, crops keep conditions
and targets paired, epochs and resumed worker-built steps see the right items, augmentations that act on the inputs
leave the targets alone, region weights and the residual's scale reach the loss, and the EMA decay and Adam betas
are bounded."""

import numpy as np
import pytest
import torch

from DCEDiffLib.errors import InputError
from DCEDiffLib.training import distributed
from DCEDiffLib.training.augmentation import augment_slice, check_augmentation
from DCEDiffLib.training.batches import SliceBatches
from DCEDiffLib.training.case_data import CaseArrays
from DCEDiffLib.training.ema import EMA

from test_training import make_trainer, tiny_case, tiny_config

CONDITIONS = ["t2w", "pd", "adc", "t1pre"]


def test_ema_copy_to_loads_the_average_into_the_network_and_keeps_the_average():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    average = {name: tensor.clone() for name, tensor in ema.shadow.items()}
    other = torch.nn.Linear(3, 2)
    ema.copy_to(other)
    for name, p in other.named_parameters():
        assert torch.equal(p, average[name]) and torch.equal(ema.shadow[name], average[name]), name
    assert not torch.equal(other.weight, net.weight)  # the average, not the current weights


def test_the_ema_folds_in_the_weights_after_each_optimizer_step(tmp_path):
    """After one step the shadow is d·w0 + (1 − d)·w1 with d = min(decay, 2/11): the initial weights w0 and the
    weights w1 the optimizer step made (an update before the step would average w0 with itself)."""
    trainer = make_trainer(tmp_path, tiny_config(iterations=1, validate_every=1, checkpoint_every=1, log_every=1,
                                                  validation_slices=1))
    before = {name: p.detach().clone() for name, p in trainer.network.named_parameters()}
    trainer.run()
    d = min(0.99, 2 / 11)
    moved = 0
    for name, p in trainer.network.named_parameters():
        expected = d * before[name] + (1 - d) * p.detach()
        assert torch.allclose(trainer.ema.shadow[name], expected, atol=1e-7), name
        moved += int(not torch.equal(p, before[name]))
    assert moved > 0  # the step changed the weights, so the check has something to see


@pytest.mark.parametrize("key, value", [("seed", 1), ("ema_decay", 0.9), ("augment", {"noise": 0.05}),
                                        ("lr", 5e-4), ("split_seed", 3)])
def test_a_resume_refuses_another_seed_ema_or_augmentation(key, value):
    """These keys change what the model learns (the batches, the noise, the average): not run control."""
    from DCEDiffLib.training.resume_check import recipe_changes

    saved = tiny_config()
    assert recipe_changes(saved, dict(saved)) == []
    changed = dict(saved, **{key: value})
    assert recipe_changes(saved, changed) == [(key, saved[key], value)]


@pytest.mark.parametrize("flip", [True, False])
def test_every_crop_keeps_its_targets_paired_with_its_conditions(flip):
    """tiny_case's late target is a pixelwise function of its T1-pre and its early one of its T1-pre and ADC:
    a crop, a flip or a lesion-centred window must move both alike."""
    cases = [tiny_case(f"p{i}", i) for i in range(2)]
    batches = SliceBatches(cases, 4, 16, seed=3, flip_left_right=flip)
    for step in range(6):
        cond, target = (t.numpy() for t in batches.batch(step))
        t1pre, adc = cond[:, 3], cond[:, 2]
        assert np.allclose(target[:, 1], np.clip(0.7 * t1pre + 0.2, -1, 1), atol=1e-6)
        assert np.allclose(target[:, 0], np.clip(0.5 * t1pre + 0.3 * (adc < 0), -1, 1), atol=1e-6)


def _slice(seed=0):
    rng = np.random.default_rng(seed)
    cond = rng.uniform(-0.8, 0.8, (4, 24, 24)).astype(np.float32)
    target = np.clip(cond[3:4].repeat(2, 0) + 0.3, -1, 1)
    return cond, target


def test_input_noise_changes_only_the_conditions():
    """``noise`` simulates noisier inputs: the acquired targets the network learns to draw are not made noisier."""
    cond, target = _slice()
    settings = check_augmentation({"noise": 0.1})
    changed = 0
    for seed in range(8):
        new_cond, new_target = augment_slice(np.random.default_rng(seed), cond, target, CONDITIONS, settings)
        assert np.array_equal(new_target, target)
        changed += int(not np.allclose(new_cond, cond, atol=1e-3))
    assert changed >= 6


def test_the_contrast_curve_changes_only_t2w_and_pd():
    """``gamma`` gives T2W and PD their own contrast curve; a curve on the T1-pre would change its relation to the
    targets (the enhancement), so the T1-pre, the ADC and the targets stay as they are."""
    cond, target = _slice(1)
    settings = check_augmentation({"gamma": 0.5})
    for seed in range(4):
        new_cond, new_target = augment_slice(np.random.default_rng(seed), cond, target, CONDITIONS, settings)
        assert np.array_equal(new_cond[2:], cond[2:]) and np.array_equal(new_target, target)
        assert not np.allclose(new_cond[0], cond[0]) and not np.allclose(new_cond[1], cond[1])


@pytest.mark.parametrize("decay", [1.5, -0.1, 0])
def test_an_ema_decay_outside_0_to_1_is_refused(decay):
    """A decay above 1 makes the average diverge; 0 or below is no average (config_checks: in (0, 1])."""
    from DCEDiffLib.training.config import make_config
    from DCEDiffLib.training.config_checks import check_training_config

    with pytest.raises(InputError, match="ema_decay"):
        check_training_config(make_config({"model": {"preset": "tiny"}, "ema_decay": decay}))
    check_training_config(make_config({"model": {"preset": "tiny"}, "ema_decay": 1}))


def test_batches_built_from_a_later_step_are_that_steps_batches():
    """A resumed run builds batches from its step on; worker processes must build step first + i, not step i."""
    from DCEDiffLib.training.step_loader import batch_for_step, step_batches

    batches = SliceBatches([tiny_case(f"p{i}", i) for i in range(2)], 2, 16, seed=1)
    for workers in (0, 1):
        built = list(step_batches(batches, "weighted", 5, 7, workers=workers))
        assert len(built) == 2
        for step, got in zip((5, 6), built):
            expected = batch_for_step(batches, "weighted", step)
            assert all(torch.equal(a, b) for a, b in zip(got[:3], expected[:3])), (workers, step)
        assert not torch.equal(built[0][0], batch_for_step(batches, "weighted", 0)[0])


def test_augmented_conditions_and_targets_are_clipped_to_the_image_range():
    """Augmentation (a bright coil, noise) may push values past ±1; the network always sees [-1, 1] (SliceBatches)."""
    cases = [tiny_case(f"p{i}", i) for i in range(2)]
    batches = SliceBatches(cases, 4, 16, seed=0, augment={"coil": 4.0, "noise": 0.2, "bias": 0.5})
    beyond = 0
    for step in range(4):
        cond, target = batches.batch(step)
        assert float(cond.abs().max()) <= 1.0 and float(target.abs().max()) <= 1.0
        beyond += int((cond.abs() == 1.0).any())
    assert beyond > 0  # the augmentation did reach the bounds, so the clip had work to do


@pytest.mark.parametrize("betas", [[0.9, 1.0], [1.0, 0.999], [-0.1, 0.999], [0.9]])
def test_adam_betas_outside_0_to_1_are_refused(betas):
    """Adam divides by 1 − β^t: a β of 1 divides by zero (config_checks: two numbers in [0, 1))."""
    from DCEDiffLib.training.config import make_config
    from DCEDiffLib.training.config_checks import check_training_config

    with pytest.raises(InputError, match="adam_betas"):
        check_training_config(make_config({"model": {"preset": "tiny"}, "adam_betas": betas}))


class ExactResidualNoise(torch.nn.Module):
    """Given the acquired targets and the residual scale s, recovers the noise exactly from the residual network's
    input [conditions, μ, √γ·r + √(1−γ)·ε] with r = (y − μ)/s (the residual of unit scale the docs describe)."""

    def __init__(self, target: torch.Tensor, scale: float):
        super().__init__()
        self.target, self.scale = target, scale

    def forward(self, x, gamma):
        g = gamma.double()[:, None, None, None]
        residual = (self.target.double() - x[:, 4:6].double()) / self.scale
        return ((x[:, 6:8].double() - g.sqrt() * residual) / (1 - g).sqrt()).float()


def test_a_residual_run_diffuses_the_residual_divided_by_its_scale(tmp_path):
    """residual.py: the diffusion network generates r = (y − μ)/s, s the residuals' std on training slices. A noise
    predictor that knows that r has zero loss; one that assumes r = (y − μ)·s does not (s is far from 1 here)."""
    from DCEDiffLib.diffusion.model_files import save_model
    from DCEDiffLib.diffusion.presets import build_network, network_config
    from DCEDiffLib.training.model_card import make_model_card

    mean_config = network_config("tiny", in_channels=6, out_channels=2)
    torch.manual_seed(0)
    save_model(build_network(mean_config), make_model_card(mean_config, "regression", CONDITIONS, "tiny",
                                                           {"data": "none (test)"}, parameterization="enhancement"),
               tmp_path / "mean.safetensors")
    trainer = make_trainer(tmp_path, tiny_config(objective="residual", mean_model=str(tmp_path / "mean.safetensors")))
    scale = trainer.residual_scale
    assert 0 < scale < 0.8  # zero enhancement against the tiny cases' targets: a residual well below unit scale
    cond, target = trainer.batches.batch(0)
    with torch.no_grad():
        loss = trainer._loss(ExactResidualNoise(target, scale), cond, target, torch.Generator().manual_seed(0))
        assumed = trainer._loss(ExactResidualNoise(target, 1 / scale), cond, target, torch.Generator().manual_seed(0))
    assert float(loss) < 1e-3 and float(assumed) > 0.01
    # μ is clamped to the targets' range, as ResidualDiffusionModel.mean clamps it at synthesis
    from test_residual import ConstantNetwork

    trainer.mean_model.network = ConstantNetwork(5.0)
    assert torch.equal(trainer._mean_of(cond), torch.ones(len(cond), 2, 16, 16))


def test_region_weights_weigh_the_pixels_of_the_training_loss(tmp_path):
    """A regression network starts by predicting 0 (zero-initialised output), so its first L1 loss is the mean |y|,
    here 0.5 outside a lesion and 0 inside it; with region_weights {"lesion": 50} the lesion's pixels count 51
    times, and the first logged loss is the weighted mean 0.5·N_out / (N_out + 51·N_in)."""
    import csv

    from DCEDiffLib.training.trainer import Trainer

    def case(name, seed):
        labels = np.zeros((2, 16, 16), np.int16)
        labels[:, 4:12, 4:12] = 7  # 64 lesion pixels of 256 on each slice
        targets = np.where(labels == 7, 0.0, 0.5).astype(np.float32)[None].repeat(2, 0)
        cond = np.random.default_rng(seed).uniform(-1, 1, (4, 2, 16, 16)).astype(np.float32)
        return CaseArrays(name, cond, targets, labels, {"lesion": 7}, tiny_case(name, 0).norm, {})

    cases = [case("a", 0), case("b", 1)]
    data = {"split": {"train": ["a"], "validation": ["b"], "test": []}, "train": cases[:1], "validation": cases[1:]}
    config = tiny_config(objective="regression", iterations=1, log_every=1, validate_every=1, checkpoint_every=1,
                         crop_size=16, region_weights={"lesion": 50.0}, validation_slices=1)
    Trainer(config, tmp_path / "run", data, distributed.setup("cpu"), show_progress=False).run()
    with open(tmp_path / "run" / "log.csv", encoding="utf-8") as handle:
        first = float(next(csv.DictReader(handle))["loss"])
    outside, inside = 256 - 64, 64
    assert first == pytest.approx(0.5 * outside / (outside + 51 * inside), rel=1e-5)


def test_the_ema_warm_up_ends_at_the_configured_decay():
    """d = min(decay, (1 + n)/(10 + n)): past the warm-up (n ≥ 17 for 0.6) every update keeps exactly ``decay`` of
    the average, so a parameter that drops to 0 leaves decay^k of the average after k more updates."""
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = EMA(net, decay=0.6)
    for _ in range(30):
        ema.update(net)
    assert torch.allclose(ema.shadow["weight"], torch.ones(1, 1))
    with torch.no_grad():
        net.weight.fill_(0.0)
    for _ in range(3):
        ema.update(net)
    assert float(ema.shadow["weight"]) == pytest.approx(0.6 ** 3, rel=1e-6)


def test_each_epoch_visits_every_slice_once_in_a_new_order():
    """batches: the stream of (case, slice) items is a new permutation every epoch."""
    cases = [tiny_case(f"p{i}", i, slices=3) for i in range(2)]
    batches = SliceBatches(cases, 2, 16, seed=4)
    n = len(batches.items)  # 6 items: 3 steps of 2 per epoch
    epochs = [[i for step in range(3 * e, 3 * e + 3) for i in batches.item_indices(step)] for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(n))
    assert len({tuple(order) for order in epochs}) > 1


def test_a_resume_compares_the_mean_model_by_its_weights(tmp_path):
    """A residual run continues only over the mean it was trained with: the same weights under another path are the
    same recipe, other weights under the same kind of path are not."""
    import json

    from DCEDiffLib.training.resume_check import recipe_changes

    for name, sha in (("a", "1" * 64), ("moved", "1" * 64), ("other", "2" * 64)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"weights_sha256": sha}), encoding="utf-8")
    saved = tiny_config(mean_model=str(tmp_path / "a.safetensors"))
    moved = dict(saved, mean_model=str(tmp_path / "moved.safetensors"))
    other = dict(saved, mean_model=str(tmp_path / "other.safetensors"))
    assert recipe_changes(saved, moved) == []
    assert [key for key, _, _ in recipe_changes(saved, other)] == ["mean_model"]


def test_the_residual_scale_is_measured_on_the_targets_the_loss_diffuses(tmp_path):
    """A residual run over a clip-consistent mean diffuses (target over the clipped T1-pre − μ) / s; s must be the
    std of exactly that, so that the residual is of unit scale as the sampler's unit noise assumes. Found by the
    session-54 audit: s was measured on the unclipped targets (0.19 against a residual std of 0.71 × s here)."""
    from DCEDiffLib.diffusion.model_files import save_model
    from DCEDiffLib.diffusion.presets import build_network, network_config
    from DCEDiffLib.training.batches import fixed_slices
    from DCEDiffLib.training.model_card import make_model_card
    from DCEDiffLib.training.trainer import Trainer

    cfg = network_config("tiny", in_channels=6, out_channels=2)
    torch.manual_seed(0)
    save_model(build_network(cfg), make_model_card(cfg, "regression", ["t2w", "pd", "adc", "t1pre"], "tiny",
                                                   {"data": "x"}, parameterization="enhancement"),
               tmp_path / "mean.safetensors")

    def bright(name, seed):  # T1-pre up to 2: much of it above the clip at 1
        case = tiny_case(name, seed)
        cond = case.conditions.copy()
        cond[3] = cond[3] * 1.5 + 0.5
        return CaseArrays(name, cond, case.targets, None, None, case.norm, {})

    cases = [bright(f"p{i}", i) for i in range(4)]
    data = {"split": {"train": ["p0", "p1", "p2"], "validation": ["p3"], "test": []}, "train": cases[:3],
            "validation": cases[3:]}
    config = tiny_config(objective="residual", mean_model=str(tmp_path / "mean.safetensors"),
                         t1pre_clip_consistent=True)
    trainer = Trainer(config, tmp_path / "run", data, distributed.setup("cpu"), show_progress=False)
    assert trainer._t1pre_clip_factor() is not None
    cond, target = fixed_slices(data["train"], 64, trainer.conditions, seed=99,
                                t1pre_clip_range_factor=trainer._t1pre_clip_factor())
    residual = (target - trainer._mean_of(cond)) / trainer.residual_scale
    assert float(residual.std()) == pytest.approx(1.0, abs=0.01)
