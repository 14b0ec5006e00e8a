"""The benchmark's naive paper loop (benchmark/naive_reference.py) against the project's ddpm sampler (issue 14):
they share no code (own schedule, own update), so agreement on the same network and noise checks both."""

import numpy as np
import torch

from DCEDiffLib.benchmark.naive_reference import naive_ddpm_volume
from DCEDiffLib.diffusion.samplers import sample


class SmallEps(torch.nn.Module):
    """A fixed random noise predictor that depends on the condition, y_t and γ."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(6, 2, 3, padding=1)

    def forward(self, x, gamma):
        return torch.tanh(self.conv(x)) * (0.5 + gamma.view(-1, 1, 1, 1))


def test_naive_paper_loop_matches_the_ddpm_sampler_over_1000_steps():
    network = SmallEps().eval()
    rng = np.random.default_rng(1)
    conditions = rng.uniform(-1, 1, size=(4, 1, 8, 8)).astype(np.float32)  # (C, K, H, W)
    naive = naive_ddpm_volume(network, conditions, seed=3, steps=1000)
    project = []
    for k in range(conditions.shape[1]):
        cond = torch.from_numpy(conditions[:, k]).unsqueeze(0)
        with torch.no_grad():
            y = sample(lambda y, g: network(torch.cat([cond, y], dim=1), g), (1, 2, 8, 8), sampler="ddpm",
                       steps=1000, generator=torch.Generator().manual_seed(3 + k))
        project.append(y[0].numpy())
    project = np.stack(project, axis=1)
    assert naive.shape == project.shape == (2, 1, 8, 8)
    assert np.abs(naive).max() > 0.1  # a real sample, not zeros
    np.testing.assert_allclose(naive, project, atol=1e-4)
