"""The denoising U-Net of Palette (guided-diffusion variant), conditioned on the noise level γ.

Residual blocks with GroupNorm and FiLM (scale-and-shift) from the γ embedding, dropout, residual down/up
sampling, skip connections, one-head self-attention in the middle block (20×20 for a 160×160 input with four
levels) and at any extra downsampling rate listed in ``attention_rates``, zero-initialised output convolutions.
Input: the conditions then the noisy targets, concatenated on the channel axis; output: predicted noise.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    """GroupNorm(32) as in guided diffusion; narrower test networks use the largest divisor of 32 that fits."""
    return math.gcd(32, channels)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def gamma_embedding(gamma: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of γ ∈ [0, 1] (Palette applies it to γ itself, not to a timestep)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=gamma.device) / half)
    args = gamma.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ResBlock(nn.Module):
    """Residual block with FiLM conditioning; ``down``/``up`` make it the resampling block (resblock_updown)."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int = None,
                 down: bool = False, up: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.in_norm = _norm(channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.down, self.up = down, up
        self.emb = nn.Linear(emb_channels, 2 * out_channels)
        self.out_norm = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            return F.avg_pool2d(x, 2)
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.in_norm(x))
        h = self.in_conv(self._resample(h))
        x = self._resample(x)
        scale, shift = self.emb(F.silu(emb))[..., None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        h = self.out_conv(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention with ``heads`` heads (DCE-diff: one head)."""

    def __init__(self, channels: int, heads: int = 1):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor = None) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        q, k, v = qkv.reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, hw, c/heads)
        out = out.transpose(-1, -2).reshape(b, c, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class _Sequence(nn.ModuleList):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, (ResBlock, AttentionBlock)) else layer(x)
        return x


class DenoisingUNet(nn.Module):
    """Palette's guided-diffusion U-Net; ``forward(x, gamma)`` with x (B, in, H, W) and γ (B,)."""

    def __init__(self, in_channels: int = 6, out_channels: int = 2, inner_channels: int = 64,
                 channel_mults: Sequence[int] = (1, 2, 4, 8), res_blocks: int = 2, dropout: float = 0.2,
                 attention_rates: Sequence[int] = (), attention_heads: int = 1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.inner_channels = inner_channels
        emb_channels = 4 * inner_channels
        self.cond_embed = nn.Sequential(nn.Linear(inner_channels, emb_channels), nn.SiLU(),
                                        nn.Linear(emb_channels, emb_channels))
        ch = int(channel_mults[0] * inner_channels)
        self.input_blocks = nn.ModuleList([_Sequence([nn.Conv2d(in_channels, ch, 3, padding=1)])])
        skip_channels = [ch]
        rate = 1
        for level, mult in enumerate(channel_mults):
            for _ in range(res_blocks):
                layers = [ResBlock(ch, emb_channels, dropout, int(mult * inner_channels))]
                ch = int(mult * inner_channels)
                if rate in attention_rates:
                    layers.append(AttentionBlock(ch, attention_heads))
                self.input_blocks.append(_Sequence(layers))
                skip_channels.append(ch)
            if level != len(channel_mults) - 1:
                self.input_blocks.append(_Sequence([ResBlock(ch, emb_channels, dropout, ch, down=True)]))
                skip_channels.append(ch)
                rate *= 2
        self.middle_block = _Sequence([ResBlock(ch, emb_channels, dropout), AttentionBlock(ch, attention_heads),
                                       ResBlock(ch, emb_channels, dropout)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mults))[::-1]:
            for index in range(res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_channels, dropout, int(mult * inner_channels))]
                ch = int(mult * inner_channels)
                if rate in attention_rates:
                    layers.append(AttentionBlock(ch, attention_heads))
                if level and index == res_blocks:
                    layers.append(ResBlock(ch, emb_channels, dropout, ch, up=True))
                    rate //= 2
                self.output_blocks.append(_Sequence(layers))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels, 3, padding=1)))
        self.downsamplings = len(channel_mults) - 1

    def forward(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(gamma):
            gamma = torch.tensor([float(gamma)], device=x.device)
        gamma = gamma.reshape(-1).to(x.device)
        if gamma.numel() == 1 and x.shape[0] != 1:
            gamma = gamma.expand(x.shape[0])
        emb = self.cond_embed(gamma_embedding(gamma, self.inner_channels).to(x.dtype))
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
