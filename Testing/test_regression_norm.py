"""The regression objective's norm (objectives.regression_loss, training key ``regression_norm``) against its
analytic optimum: with L1 a constant prediction settles at the (weighted) median of the targets, with the squared
error at their (weighted) mean."""

import numpy as np
import pytest
import torch

from DCEDiffLib.diffusion.objectives import regression_loss
from DCEDiffLib.errors import InputError

from test_training import tiny_config


class ConstantNetwork(torch.nn.Module):
    """A stand-in network that ignores its input and predicts one learnable value per target channel: the optimum
    of each loss over a set of targets is then known in closed form."""

    out_channels = 2

    def __init__(self):
        super().__init__()
        self.value = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x, gamma):
        return self.value[None, :, None, None].expand(x.shape[0], 2, x.shape[2], x.shape[3])


def _fit(norm, target, weights=None, steps=1500):
    network = ConstantNetwork()
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    cond = torch.zeros(target.shape[0], 4, target.shape[2], target.shape[3])
    for step in range(steps):
        for group in optimizer.param_groups:  # anneal, so L1's sign gradient settles instead of dithering
            group["lr"] = 0.01 * (1 - step / steps) + 1e-4
        loss = regression_loss(network, cond, target, weights=weights, norm=norm)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.value.detach().numpy()


def _weighted_median(values, weights):
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return values[order][np.searchsorted(cumulative, cumulative[-1] / 2)]


def test_l1_finds_the_median_and_l2_the_mean_weighted_or_not():
    rng = np.random.default_rng(0)
    # a skewed target (mostly background, a bright minority: a lesion's two-valued outcome), 2 channels
    values = np.where(rng.random((4, 2, 8, 8)) < 0.3, 0.8, 0.0) + rng.normal(0, 0.02, (4, 2, 8, 8))
    target = torch.from_numpy(values.astype(np.float32))
    weights = torch.from_numpy(np.where(values[:, 0] > 0.4, 3.0, 1.0).astype(np.float32))
    for w in (None, weights):
        per_pixel = np.ones((4, 8, 8)) if w is None else w.numpy()
        for channel in range(2):
            v = values[:, channel].ravel()
            wv = per_pixel.ravel()
            l1 = _fit("l1", target, w)[channel]
            l2 = _fit("l2", target, w)[channel]
            assert l1 == pytest.approx(_weighted_median(v, wv), abs=0.03), (w is None, channel)
            assert l2 == pytest.approx(np.sum(v * wv) / np.sum(wv), abs=0.01), (w is None, channel)
    # the two optima differ here (0.3 of the pixels at 0.8: median 0, mean 0.24), so each check can fail
    assert abs(_fit("l1", target)[0] - _fit("l2", target)[0]) > 0.15


def test_an_unknown_norm_is_refused_by_the_loss_and_by_the_config():
    target = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="regression norm 'l3'"):
        regression_loss(ConstantNetwork(), torch.zeros(1, 4, 4, 4), target, norm="l3")
    with pytest.raises(InputError, match="regression_norm 'huber'"):
        tiny_config(objective="regression", regression_norm="huber")
    with pytest.raises(InputError, match="needs objective 'regression'"):
        tiny_config(objective="diffusion", regression_norm="l2")
    assert tiny_config(objective="regression")["regression_norm"] == "l1"
