"""The training-only auxiliary segmentation head (training/auxiliary_segmentation.py): its classes, its loss, that
it leaves the network's function and model file alone, that it learns through the network, and exact resume."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from DCEDiffLib.diffusion.objectives import predict_regression
from DCEDiffLib.diffusion.presets import build_network, network_config
from DCEDiffLib.errors import InputError
from DCEDiffLib.training import distributed
from DCEDiffLib.training.auxiliary_segmentation import (IGNORE, AuxiliarySegmentationHead,
                                                        segmentation_class_map)
from DCEDiffLib.training.batches import SliceBatches
from DCEDiffLib.training.case_data import CaseArrays
from DCEDiffLib.training.trainer import Trainer

from test_training import as_older_checkpoint, assert_same_training_state, resumed_run, tiny_case, tiny_config

LEGEND = {"fat": 1, "peripheral_zone": 2, "transition_zone": 3, "lesion": 4}


def labelled_case(name: str, seed: int) -> CaseArrays:
    """A tiny case whose label map follows its conditions pixel by pixel (so a crop's classes can be checked
    against its conditions after any flip): PZ where the ADC channel is high, TZ where the T2W channel is low, a
    lesion where both hold, fat elsewhere."""
    case = tiny_case(name, seed)
    adc, t2w = case.conditions[2], case.conditions[0]
    labels = np.full(adc.shape, LEGEND["fat"], dtype=np.int16)
    labels[adc > 0.3] = LEGEND["peripheral_zone"]
    labels[t2w < -0.3] = LEGEND["transition_zone"]
    labels[(adc > 0.3) & (t2w < -0.3)] = LEGEND["lesion"]
    case.labels, case.legend = labels, dict(LEGEND)
    return case


def expected_classes(cond: np.ndarray) -> np.ndarray:
    adc, t2w = cond[2], cond[0]
    classes = np.zeros(adc.shape, dtype=np.int64)
    classes[adc > 0.3] = 1
    classes[t2w < -0.3] = 2
    classes[(adc > 0.3) & (t2w < -0.3)] = 3
    return classes


def test_class_map_names_the_zones_and_the_lesions_and_ignores_unlabelled_cases():
    labels = np.array([[[1, 2, 3, 4, 9]]], dtype=np.int16)
    assert segmentation_class_map(labels, LEGEND, labels.shape).tolist() == [[[0, 1, 2, 3, 0]]]
    # a legend without a lesion: zones only; no labels at all (a real exam): every voxel ignored
    no_lesion = {k: v for k, v in LEGEND.items() if k != "lesion"}
    assert segmentation_class_map(labels, no_lesion, labels.shape).tolist() == [[[0, 1, 2, 0, 0]]]
    assert (segmentation_class_map(None, None, (2, 3, 3)) == IGNORE).all()
    with pytest.raises(ValueError, match="expected the case's grid"):
        segmentation_class_map(labels, LEGEND, (1, 1, 4))


def test_the_hook_leaves_the_network_output_unchanged_and_detaches():
    torch.manual_seed(0)
    network = build_network(network_config("tiny", in_channels=6, out_channels=2))
    for parameter in network.parameters():
        parameter.data.normal_(0.0, 0.05)
    cond = torch.rand(2, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        before = predict_regression(network, cond)
        head = AuxiliarySegmentationHead.for_network(network)
        after = predict_regression(network, cond)
        assert torch.equal(before, after)
        assert head.logits().shape == (2, 4, 16, 16)
    head.detach()
    with pytest.raises(RuntimeError, match="no features recorded"):
        head.logits()
    predict_regression(network, cond)
    with pytest.raises(RuntimeError, match="no features recorded"):
        head.logits()  # detached: the network's passes are no longer recorded


def test_loss_prefers_the_right_map_and_ignores_unlabelled_voxels():
    classes = torch.zeros(1, 8, 8, dtype=torch.int64)
    classes[0, 2:6, 2:6] = 1
    classes[0, 3:5, 3:5] = 3
    head = AuxiliarySegmentationHead(feature_channels=4)
    right = torch.nn.functional.one_hot(classes, 4).permute(0, 3, 1, 2).float() * 8.0
    wrong = right.roll(1, dims=1)
    losses = []
    for logits in (right, wrong):
        head._features = logits  # an identity head: the features are the logits
        with torch.no_grad():
            head.conv.weight.copy_(torch.eye(4)[:, :, None, None])
            head.conv.bias.zero_()
        with torch.no_grad():
            losses.append(float(head.loss(classes)))
    assert losses[0] < 0.05 < 1.0 < losses[1], losses
    head._features = wrong.requires_grad_(True)
    ignored = head.loss(torch.full_like(classes, IGNORE))
    assert float(ignored.detach()) == 0.0 and ignored.requires_grad


def test_the_head_teaches_the_network_through_the_hook():
    torch.manual_seed(1)
    network = build_network(network_config("tiny", in_channels=6, out_channels=2))
    head = AuxiliarySegmentationHead.for_network(network)
    optimizer = torch.optim.Adam(list(network.parameters()) + list(head.parameters()), lr=3e-3)
    case = labelled_case("p0", 0)
    cond = torch.from_numpy(np.clip(case.conditions[:, :2], -1, 1)).permute(1, 0, 2, 3).contiguous()
    classes = torch.from_numpy(segmentation_class_map(case.labels[:2], case.legend, (2, 32, 32)))
    first_layer = network.input_blocks[0][0].weight
    losses = []
    for step in range(60):
        predict_regression(network, cond)
        loss = head.loss(classes)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:  # the segmentation loss alone reaches the network's first layer
            assert first_layer.grad is not None and float(first_layer.grad.abs().sum()) > 0
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_segmentation_batches_keep_classes_with_their_crops_through_flips():
    cases = [labelled_case(f"p{i}", i) for i in range(3)]
    batches = SliceBatches(cases, batch_size=4, crop_size=16, seed=5, segmentation=True)
    for step in range(6):  # 24 crops: some flipped (each with probability 1/2); the classes must flip with them
        cond, target, weights, classes = batches.segmentation_batch(step)
        assert classes.dtype == torch.int64 and classes.shape == (4, 16, 16)
        for b in range(4):
            assert np.array_equal(classes[b].numpy(), expected_classes(cond[b].numpy()))
        plain_cond, _, _ = batches.weighted_batch(step)  # the same crops as without the classes
        assert torch.equal(plain_cond, cond)
    with pytest.raises(ValueError, match="segmentation=True"):
        SliceBatches(cases, batch_size=2, crop_size=16, seed=5).segmentation_batch(0)


def _trainer(tmp_path, config, name):
    cases = [labelled_case(f"p{i}", i) for i in range(4)]
    data = {"split": {"train": ["p0", "p1", "p2"], "validation": ["p3"], "test": []},
            "train": cases[:3], "validation": cases[3:]}
    return Trainer(config, tmp_path / name, data, distributed.setup("cpu"), show_progress=False)


def test_training_with_the_head_exports_a_plain_model_and_resumes_exactly(tmp_path):
    config = tiny_config(objective="regression", parameterization="enhancement", aux_segmentation_weight=0.5,
                         region_weights={"lesion": 4.0})
    full = _trainer(tmp_path, config, "full")
    full.run()
    plain = _trainer(tmp_path, tiny_config(objective="regression", parameterization="enhancement"), "plain")
    plain.run()
    # the model file has the plain run's tensors and nothing of the head; the card records the weight
    with_head = load_file(str(tmp_path / "full" / "model.safetensors"))
    assert sorted(with_head) == sorted(load_file(str(tmp_path / "plain" / "model.safetensors")))
    assert not any("segmentation" in key for key in with_head)
    card = json.loads((tmp_path / "full" / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["recipe"]["aux_segmentation_weight"] == 0.5
    # the head trained the network: the two runs differ
    assert not all(torch.equal(a, b) for a, b in zip(full.network.state_dict().values(),
                                                     plain.network.state_dict().values()))
    # interrupted after 6 steps, resumed: identical network, EMA and head at the end
    second = resumed_run(lambda: _trainer(tmp_path, config, "resumed"), 6)
    assert_same_training_state(full, second)
    for name, a in full.segmentation_head.state_dict().items():
        assert torch.equal(a, second.segmentation_head.state_dict()[name]), name
    # a checkpoint of a run without the head cannot resume a run with one
    plain_dir = tmp_path / "plain"
    (tmp_path / "mixed").mkdir()
    for suffix in ("safetensors", "json"):
        (tmp_path / "mixed" / "checkpoints").mkdir(exist_ok=True)
        (tmp_path / "mixed" / "checkpoints" / f"last.{suffix}").write_bytes(
            (plain_dir / "checkpoints" / f"last.{suffix}").read_bytes())
    with pytest.raises(InputError, match=r"another recipe \(aux_segmentation_weight: 0.0 there, 0.5 now"):
        _trainer(tmp_path, config, "mixed").resume()
    # a checkpoint that did not record its configuration (older versions): the tensors themselves say so
    as_older_checkpoint(tmp_path / "mixed" / "checkpoints")
    with pytest.raises(InputError, match="has no 'segmentation_head' weights"):
        _trainer(tmp_path, config, "mixed").resume()
    # nor the other way round: a run without the head refuses a checkpoint that trained one
    plain_config = tiny_config(objective="regression", parameterization="enhancement")
    with pytest.raises(InputError, match=r"another recipe \(aux_segmentation_weight: 0.5 there, 0.0 now"):
        _trainer(tmp_path, plain_config, "resumed").resume()
    as_older_checkpoint(tmp_path / "resumed" / "checkpoints")  # again as an older checkpoint would be
    with pytest.raises(InputError, match=r"also trains \['segmentation_head'\]"):
        _trainer(tmp_path, plain_config, "resumed").resume()


@pytest.mark.parametrize("overrides, message", [
    ({"aux_segmentation_weight": -1}, "expected a number ≥ 0"),
    ({"aux_segmentation_weight": 0.2, "objective": "residual", "mean_model": "mean.safetensors"},
     "needs objective 'regression'"),
    ({"aux_segmentation_weight": 0.2, "objective": "regression", "lesion_contrast_weight": 1.0}, "one of them"),
])
def test_config_refuses_a_head_where_it_cannot_train(overrides, message):
    with pytest.raises(InputError, match=message):
        tiny_config(**overrides)
