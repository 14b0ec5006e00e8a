"""The benchmark's naive paper loop (benchmark/naive_reference.py) against the project's ddpm sampler (issue 14):
they share no code (own schedule, own update), so agreement on the same network and noise checks both."""

import numpy as np
import pytest
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


def test_the_naive_loop_time_per_slice_step_divides_by_every_slice_step_timed():
    """time_naive_loop times ``iterations`` evaluations on each of ``slices``: the time per slice-step is the
    measured time over slices × iterations (4 × 3 = 12 evaluations here), so it times the 12 back to the measured
    time, and the extrapolated total is it times total_slices × total_steps. The network sleeps 5 ms per call, so
    one slice-step costs at least 5 ms and far less than the 4 slices' 20 ms."""
    import time

    import torch

    from DCEDiffLib.benchmark.naive_reference import time_naive_loop

    def network(x, gamma):
        time.sleep(0.005)
        return torch.zeros((1, 2) + tuple(x.shape[2:]))

    conditions = np.zeros((4, 4, 8, 8), np.float32)  # (C, K, H, W)
    result = time_naive_loop(network, conditions, slices=[0, 1, 2, 3], iterations=3, total_slices=16,
                             total_steps=1000)
    assert result["measured_slices"] == 4 and result["measured_steps"] == 3
    per = result["seconds_per_slice_step"]
    assert per * 12 == pytest.approx(result["measured_s"], rel=0.01)
    assert per >= 0.005  # each call sleeps 5 ms (no upper bound: a loaded machine only makes it slower)
    assert result["seconds"] == pytest.approx(per * 16 * 1000, rel=0.01)
