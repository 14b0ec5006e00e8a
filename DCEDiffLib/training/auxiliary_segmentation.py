"""An auxiliary segmentation head for training a regression (mean) network: the gland zones and the lesions.

Why: the mean network sees each lesion on its ADC and T2W but draws it at a fraction of its contrast, with the gland
around it as bright as the lesion (docs/model_quality.md, "Where the lesion r goes"). Its only lesion signal is the
L1 error of the enhancement, which is noisy and points both ways (textbook lesions enhance more than the gland,
less-enhancing ones less). The phantom's labels say crisply where the zones and the lesions are; a 1×1 convolution
on the network's last features, trained with cross-entropy and Dice on those labels, asks the shared features to
carry that map (multi-task learning, as in lesion-aware synthesis networks), and the enhancement head can use it.

The head exists only while training: it reads the features through a forward hook, so the exported model file, its
card and the synthesis are the same as a plain regression run's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Class 0 is everything else; a case without labels is ignored (IGNORE) in every voxel.
SEGMENTATION_CLASSES = ("peripheral_zone", "transition_zone", "lesion")
IGNORE = -100


def segmentation_class_map(labels: Optional[np.ndarray], legend: Optional[dict], shape) -> np.ndarray:
    """int64 class indices of ``shape`` (K, H, W, the case's grid): 0 background, 1 + the index of each name of
    :data:`SEGMENTATION_CLASSES` present in ``legend``; all :data:`IGNORE` when the case has no labels (a real exam).
    Lesions are painted last, so a lesion inside a zone is a lesion."""
    if labels is None or not legend:
        return np.full(tuple(shape), IGNORE, dtype=np.int64)
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"label map {labels.shape}; expected the case's grid {tuple(shape)}")
    classes = np.zeros(labels.shape, dtype=np.int64)
    for index, name in enumerate(SEGMENTATION_CLASSES, start=1):
        if name in legend:
            classes[labels == int(legend[name])] = index
    return classes


def feature_layer(network: nn.Module) -> nn.Module:
    """The layer whose output the head reads: the activation before the U-Net's last convolution
    (``DenoisingUNet.out`` is norm, SiLU, convolution)."""
    out = getattr(network, "out", None)
    if not isinstance(out, nn.Sequential) or len(out) != 3 or not isinstance(out[2], nn.Conv2d):
        raise ValueError("auxiliary segmentation needs a DenoisingUNet (its 'out' block: norm, SiLU, convolution)")
    return out[1]


class AuxiliarySegmentationHead(nn.Module):
    """A 1×1 convolution from the network's last features to the classes, fed by a forward hook.

    ``attach(network)`` once; after each forward pass of the network :meth:`loss` scores the features that pass
    produced. The hook only records the features, so the network's output is unchanged."""

    def __init__(self, feature_channels: int, classes: int = len(SEGMENTATION_CLASSES) + 1):
        super().__init__()
        self.classes = int(classes)
        self.conv = nn.Conv2d(int(feature_channels), self.classes, 1)
        self._features: Optional[torch.Tensor] = None
        self._handle = None

    @classmethod
    def for_network(cls, network: nn.Module) -> "AuxiliarySegmentationHead":
        """A head sized for ``network``'s last features, attached to it."""
        head = cls(network.out[2].in_channels)
        head.attach(network)
        return head

    def attach(self, network: nn.Module) -> None:
        """Record ``network``'s last features on every forward pass (replaces an earlier attachment)."""
        self.detach()
        self._handle = feature_layer(network).register_forward_hook(self._record)

    def detach(self) -> None:
        """Stop recording (the network is left as it was)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._features = None

    def _record(self, module, inputs, output) -> None:
        self._features = output

    def logits(self) -> torch.Tensor:
        """(B, classes, H, W) float32 logits of the features of the last forward pass."""
        if self._features is None:
            raise RuntimeError("no features recorded: run the attached network first")
        return self.conv(self._features).float()

    def loss(self, classes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy plus soft Dice over the foreground classes present in the batch, against ``classes``
        (B, H, W) int64 (voxels of :data:`IGNORE` left out); 0 with a gradient path when every voxel is ignored.
        Dice as nnU-Net pairs it with cross-entropy: the lesions fill under 1 % of the voxels, and cross-entropy
        alone would let the head call them gland."""
        logits = self.logits()
        self._features = None  # one loss per forward pass
        valid = classes != IGNORE
        if not bool(valid.any()):
            return logits.sum() * 0.0
        cross_entropy = F.cross_entropy(logits, classes, ignore_index=IGNORE)
        probabilities = logits.softmax(1) * valid[:, None]
        one_hot = F.one_hot(classes.clamp(min=0), self.classes).permute(0, 3, 1, 2).to(logits.dtype)
        one_hot = one_hot * valid[:, None]
        overlap = (probabilities * one_hot).sum((0, 2, 3))[1:]
        counts = one_hot.sum((0, 2, 3))[1:]
        sizes = probabilities.sum((0, 2, 3))[1:] + counts
        present = counts > 0
        if not bool(present.any()):
            return cross_entropy
        dice = (2 * overlap + 1.0) / (sizes + 1.0)
        return cross_entropy + (1.0 - dice[present]).mean()
