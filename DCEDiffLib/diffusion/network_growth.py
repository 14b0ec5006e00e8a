"""A trained U-Net made deeper without changing what it computes (issue 12: a larger mean network, trained on).

A network trained for thousands of steps is the best start for a larger one: :func:`deepen_res_blocks` loads a
:class:`~DCEDiffLib.diffusion.unet.DenoisingUNet` with one residual block per level into one built with more, so that
the deeper network computes exactly the same function before its first step (Net2DeeperNet, Chen et al. 2016,
done with the blocks' own zero-initialised output convolutions):

- encoder: each level's trained block comes first; the added blocks are identities (a residual block whose output
  convolution is zero, as :class:`ResBlock` initialises it, with an identity skip);
- decoder: each level's first trained block reads the skip of the level's last encoder block (an identity of the
  trained block's output, so the same tensor); the added blocks pass their input through (a zero residual branch, a
  1×1 skip convolution that keeps the running features and ignores the skip tensor); the level's last trained block
  (with its upsampling) reads the same skip as before.

The added blocks learn from the first step on (their output convolutions get gradients).
"""

from __future__ import annotations

import torch
from torch import nn

GROWABLE_KEY = "res_blocks"


def is_deepened(source_config: dict, target_config: dict) -> bool:
    """True when ``target_config`` is ``source_config`` with more residual blocks per level (a network
    :func:`deepen_res_blocks` can load); False when the two are the same; ValueError for any other difference."""
    source = {k: v for k, v in source_config.items() if k != GROWABLE_KEY}
    target = {k: v for k, v in target_config.items() if k != GROWABLE_KEY}
    if _plain(source) != _plain(target):
        raise ValueError("the network configs differ in more than the residual blocks per level")
    before, after = int(source_config.get(GROWABLE_KEY, 0)), int(target_config.get(GROWABLE_KEY, 0))
    if after == before:
        return False
    if before != 1 or after < before:
        raise ValueError(f"res_blocks {before} → {after}: only a network with 1 residual block per level can be "
                         "deepened, to 2 or more")
    if source_config.get("attention_rates"):
        raise ValueError("a network with attention inside its levels cannot be deepened (only attention-free levels)")
    return True


def _plain(config: dict) -> dict:
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in config.items()}


@torch.no_grad()
def deepen_res_blocks(source: nn.Module, target: nn.Module) -> None:
    """Copy a 1-block-per-level U-Net (``source``) into a deeper one (``target``, same config but ``res_blocks``),
    so that ``target`` computes the same function; ``target``'s added blocks are set to identities. ``source`` is
    not modified."""
    levels = source.downsamplings + 1
    if len(source.output_blocks) != 2 * levels:  # two decoder blocks per level at res_blocks = 1
        raise ValueError("the source network does not have 1 residual block per level")
    blocks = (len(target.output_blocks) // levels) - 1
    if target.downsamplings + 1 != levels or blocks < 2 or len(target.output_blocks) != levels * (blocks + 1):
        raise ValueError("the target network is not the source's config with 2 or more residual blocks per level")
    mapping = {"cond_embed": "cond_embed", "middle_block": "middle_block", "out": "out",
               "input_blocks.0": "input_blocks.0"}
    for level in range(levels):
        old_first = 1 + 2 * level  # the level's residual block, then its downsampling block
        new_first = 1 + (blocks + 1) * level
        mapping[f"input_blocks.{old_first}"] = f"input_blocks.{new_first}"
        if level != levels - 1:
            mapping[f"input_blocks.{old_first + 1}"] = f"input_blocks.{new_first + blocks}"
    for rank in range(levels):  # decoder order: deepest level first
        mapping[f"output_blocks.{2 * rank}"] = f"output_blocks.{(blocks + 1) * rank}"
        mapping[f"output_blocks.{2 * rank + 1}"] = f"output_blocks.{(blocks + 1) * rank + blocks}"
    state = target.state_dict()  # the added blocks keep their fresh weights
    for name, value in source.state_dict().items():  # a weight's module is one mapped prefix, whole dotted parts
        prefix = next((p for p in mapping if name.startswith(p + ".")), None)
        if prefix is None:
            raise ValueError(f"source weight {name!r} has no place in the deeper network")
        new_name = mapping[prefix] + name[len(prefix):]
        if new_name not in state or state[new_name].shape != value.shape:
            raise ValueError(f"source weight {name!r} does not fit {new_name!r} of the deeper network")
        state[new_name] = value.clone()
    target.load_state_dict(state)
    for rank in range(levels):
        for extra in range(1, blocks):
            _pass_features_through(target.output_blocks[(blocks + 1) * rank + extra][0])


def _pass_features_through(block: nn.Module) -> None:
    """An added decoder block: zero residual branch, and a 1×1 skip that keeps the running features (the first
    ``out`` channels of its input) and ignores the encoder skip concatenated after them."""
    nn.init.zeros_(block.out_conv.weight)
    nn.init.zeros_(block.out_conv.bias)
    skip = block.skip
    if not isinstance(skip, nn.Conv2d):
        raise ValueError("an added decoder block should have a 1×1 skip convolution")
    weight = torch.zeros_like(skip.weight)
    weight[:, :skip.out_channels, 0, 0] = torch.eye(skip.out_channels, dtype=weight.dtype)
    skip.weight.copy_(weight)
    nn.init.zeros_(skip.bias)


@torch.no_grad()
def insert_zero_input_channels(source: nn.Module, target: nn.Module, position: int, count: int = 1) -> None:
    """Load ``source`` into ``target``, a copy of its network that reads ``count`` more input channels inserted
    before input channel ``position``: every tensor is copied, the input convolution's weights for the new channels
    are zero, so ``target`` computes the same function and learns the new channels' use from the first step
    (diffusion/absolute_adc.py). ``source`` is not modified."""
    from DCEDiffLib.diffusion.slice_context import first_convolution

    old, new = first_convolution(source), first_convolution(target)
    if new.in_channels != old.in_channels + count or not 0 <= position <= old.in_channels:
        raise ValueError(f"the target network reads {new.in_channels} channels; the source's {old.in_channels} with "
                         f"{count} inserted at {position} need {old.in_channels + count}")
    name = next(key for key, value in source.named_parameters() if value is old.weight)
    weight = torch.zeros_like(new.weight)
    weight[:, :position] = old.weight[:, :position]
    weight[:, position + count:] = old.weight[:, position:]
    state = source.state_dict()
    state[name] = weight
    target.load_state_dict(state)
