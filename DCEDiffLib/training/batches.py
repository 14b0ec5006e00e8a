"""Step-indexed training batches: what a step sees depends only on (seed, step, rank).

That makes resuming from a checkpoint bit-identical to an uninterrupted run (no data-loader state to save) and
splits data between DDP ranks like a distributed sampler: the global stream of shuffled (case, slice) items is
cut into consecutive batches of ``batch_size`` per rank, each epoch a new permutation.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from DCEDiffLib.diffusion.absolute_adc import absolute_adc_channel, adc_index
from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import INPUT_MODALITIES
from DCEDiffLib.training.augmentation import augment_slice, check_augmentation
from DCEDiffLib.training.auxiliary_segmentation import segmentation_class_map
from DCEDiffLib.training.case_data import CaseArrays
from DCEDiffLib.training.clipped_t1pre import targets_over_clipped_t1pre


class SliceBatches:
    """Random crops of training slices, addressed by step number.

    ``conditions_kept`` selects condition channels (for modality ablations); values are clipped to [-1, 1].
    """

    def __init__(self, cases: Sequence[CaseArrays], batch_size: int, crop_size: int, seed: int,
                 conditions_kept: Sequence[str] = INPUT_MODALITIES, flip_left_right: bool = True,
                 rank: int = 0, world_size: int = 1, region_weights: Optional[Dict[str, float]] = None,
                 augment: Optional[Dict[str, float]] = None, lesion_slice_share: float = 0.0,
                 lesion_ring_px: int = 0, context_slices: int = 0, segmentation: bool = False,
                 absolute_adc: bool = False, t1pre_clip_range_factor: Optional[float] = None):
        usable = [c for c in cases if c.targets is not None]
        if not usable:
            raise ValueError("no training case has acquired early/late DCE targets")
        self.cases: List[CaseArrays] = usable
        self.items = [(ci, k) for ci, c in enumerate(usable) for k in range(c.num_slices)]
        self.batch_size = int(batch_size)
        self.crop_size = int(crop_size)
        self.seed = int(seed)
        self.channels = [INPUT_MODALITIES.index(m) for m in conditions_kept]
        self.flip = flip_left_right
        self.rank = rank
        self.world_size = world_size
        self._perm_cache = {}
        check_region_names(region_weights or {}, usable)
        self.weights = [region_weight_map(c, region_weights or {}) for c in usable]
        self.conditions_kept = list(conditions_kept)
        self.context_slices = int(context_slices)  # 2.5D: the neighbours' conditions follow the slice's own
        # the ADC in absolute units after them (diffusion/absolute_adc.py), from the augmented ADC of the slice
        self.absolute_adc_at = adc_index(self.conditions_kept) if absolute_adc else None
        # targets over the T1-pre as the network reads it, clipped (training/clipped_t1pre.py); None: as acquired
        self.t1pre_clip_range_factor = t1pre_clip_range_factor
        self.t1pre_at = self.conditions_kept.index("t1pre") if t1pre_clip_range_factor else None
        self.augment = check_augmentation(augment or {})
        self.augmenting = any(self.augment.values())
        # Foreground oversampling (as nnU-Net does): lesions fill a few percent of the slices, so a share of each
        # batch is drawn from slices with a lesion and cropped around one of its voxels.
        self.lesion_slice_share = float(lesion_slice_share)
        self.lesion_voxels = [lesion_voxels(c) for c in usable]
        self.lesion_items = [(ci, k) for ci, voxels in enumerate(self.lesion_voxels) for k in voxels]
        # For a loss on the lesion's contrast against the gland around it (contrast_batch): per case, the lesion
        # mask and a ring of gland ``lesion_ring_px`` pixels wide around it, in-plane, as uint8 (2, K, H, W).
        self.lesion_ring_px = int(lesion_ring_px)
        self.contrast_masks = [lesion_and_ring(c, self.lesion_ring_px) for c in usable] if self.lesion_ring_px else None
        # For an auxiliary segmentation head (training/auxiliary_segmentation.py): per case, its zone/lesion classes.
        self.class_maps = [segmentation_class_map(c.labels, c.legend, c.targets.shape[1:]) for c in usable] \
            if segmentation else None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            self._perm_cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.items))}
        return self._perm_cache[epoch]

    def item_indices(self, step: int) -> List[int]:
        """Indices into ``items`` used by this rank at ``step``."""
        n = len(self.items)
        first = (step * self.world_size + self.rank) * self.batch_size
        out = []
        for position in range(first, first + self.batch_size):
            out.append(int(self._permutation(position // n)[position % n]))
        return out

    def batch(self, step: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(conditions (B, C, S, S), targets (B, 2, S, S)) float32 for ``step``."""
        cond, target, _ = self.weighted_batch(step)
        return cond, target

    def weighted_batch(self, step: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(conditions, targets, per-pixel loss weights (B, S, S)) float32 for ``step``; the same crops as
        :meth:`batch`."""
        cond, target, weights, _, _ = self._crops(step, with_masks=False)
        return cond, target, weights

    def contrast_batch(self, step: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`weighted_batch` plus the lesion and ring masks of the same crops, float32 (B, 2, S, S)
        (channel 0 lesion, 1 ring; zeros where a crop has none). Needs ``lesion_ring_px`` > 0."""
        if not self.contrast_masks:
            raise ValueError("contrast_batch needs lesion_ring_px > 0")
        cond, target, weights, masks, _ = self._crops(step, with_masks=True)
        return cond, target, weights, masks

    def segmentation_batch(self, step: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`weighted_batch` plus the segmentation classes of the same crops, int64 (B, S, S)
        (``auxiliary_segmentation.segmentation_class_map``). Needs ``segmentation=True``."""
        if self.class_maps is None:
            raise ValueError("segmentation_batch needs segmentation=True")
        cond, target, weights, _, classes = self._crops(step, with_masks=False, with_classes=True)
        return cond, target, weights, classes

    def _crops(self, step: int, with_masks: bool, with_classes: bool = False):
        """(conditions, targets, weights, masks or None, classes or None) of this step's crops."""
        rng = np.random.default_rng([self.seed, step, self.rank, 1])
        conds, targets, weights, masks, classes = [], [], [], [], []
        lesion_rng = np.random.default_rng([self.seed, step, self.rank, 2])  # separate: old runs stay identical
        for index in self.item_indices(step):
            case_index, k = self.items[index]
            centre = None
            if self.lesion_items and self.lesion_slice_share and lesion_rng.random() < self.lesion_slice_share:
                case_index, k = self.lesion_items[int(lesion_rng.integers(len(self.lesion_items)))]
                voxels = self.lesion_voxels[case_index][k]
                centre = voxels[int(lesion_rng.integers(len(voxels)))]
            case = self.cases[case_index]
            cond = conditions_with_context(case, self.channels, k, self.context_slices)
            target = case.targets[:, k]
            height, width = cond.shape[-2:]
            top = int(rng.integers(0, height - self.crop_size + 1))
            left = int(rng.integers(0, width - self.crop_size + 1))
            if centre is not None:  # a window that contains the lesion voxel, placed at random around it
                top = int(np.clip(centre[0] - lesion_rng.integers(0, self.crop_size), 0, height - self.crop_size))
                left = int(np.clip(centre[1] - lesion_rng.integers(0, self.crop_size), 0, width - self.crop_size))
            window = (slice(None), slice(top, top + self.crop_size), slice(left, left + self.crop_size))
            weight = self.weights[case_index][k][window[1:]]
            mask = self.contrast_masks[case_index][:, k][window] if with_masks else None
            labels = self.class_maps[case_index][k][window[1:]] if with_classes else None
            cond, target = cond[window], target[window]
            fat = self._fat_mask(case, k, window[1:])
            if self.flip and rng.random() < 0.5:  # left-right is the column (i) axis of a T2W-oriented grid
                cond, target, weight = cond[..., ::-1], target[..., ::-1], weight[..., ::-1]
                mask = mask[..., ::-1] if mask is not None else None
                fat = fat[..., ::-1] if fat is not None else None
                labels = labels[..., ::-1] if labels is not None else None
            if self.augmenting:
                cond, target = augment_slice(rng, cond, target, self.conditions_kept, self.augment,
                                             grid_shape=(height, width), window=window[1:], fat_mask=fat)
            if self.t1pre_at is not None:  # the slice's own T1-pre, augmented and not yet clipped
                target = targets_over_clipped_t1pre(cond[self.t1pre_at], target, self.t1pre_clip_range_factor)
            clipped = np.clip(cond, -1, 1)
            if self.absolute_adc_at is not None:
                absolute = absolute_adc_channel(cond[self.absolute_adc_at], case.norm["adc"])
                clipped = np.concatenate([clipped, absolute[None]])
            conds.append(clipped)
            targets.append(np.clip(target, -1, 1))
            weights.append(weight)
            masks.append(mask)
            classes.append(labels)
        return (_stacked(conds), _stacked(targets), _stacked(weights), _stacked(masks) if with_masks else None,
                torch.from_numpy(np.ascontiguousarray(np.stack(classes))) if with_classes else None)

    def _fat_mask(self, case: CaseArrays, k: int, window) -> Optional[np.ndarray]:
        """The crop's fat label (for the ``fat_gain`` augmentation); None without labels or without that key."""
        if not self.augment.get("fat_gain") or case.labels is None or not case.legend or "fat" not in case.legend:
            return None
        return case.labels[k][window] == case.legend["fat"]


def _stacked(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))


def lesion_voxels(case: CaseArrays) -> Dict[int, np.ndarray]:
    """Slice index → (N, 2) in-plane indices of the lesion voxels of that slice; empty without a lesion label."""
    if case.labels is None or not case.legend or "lesion" not in case.legend:
        return {}
    mask = case.labels == int(case.legend["lesion"])
    return {int(k): np.argwhere(mask[k]) for k in range(mask.shape[0]) if mask[k].any()}


def lesion_and_ring(case: CaseArrays, ring_px: int) -> np.ndarray:
    """uint8 (2, K, H, W): the case's lesion label, and the gland (peripheral and transition zone) within
    ``ring_px`` pixels of it in-plane, lesions excluded; zeros without a lesion label."""
    from scipy.ndimage import binary_dilation

    out = np.zeros((2,) + case.conditions.shape[1:], dtype=np.uint8)
    if case.labels is None or not case.legend or "lesion" not in case.legend:
        return out
    lesion = case.labels == int(case.legend["lesion"])
    gland = np.isin(case.labels, [int(case.legend[z]) for z in ("peripheral_zone", "transition_zone")
                                  if z in case.legend])
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # in-plane only: slices are thick
    ring = binary_dilation(lesion, structure, iterations=ring_px) & gland & ~lesion
    out[0], out[1] = lesion, ring
    return out


def check_region_names(region_weights: Dict[str, float], cases: Sequence[CaseArrays]) -> None:
    """Refuse a ``region_weights`` name that no training case's legend has (a typo would weigh nothing)."""
    known = {name for c in cases for name in (c.legend or {})}
    if "bladder" in known:
        known.add("urine")
    unknown = sorted(set(region_weights) - known)
    if unknown:
        raise InputError(f"training config: region_weights {unknown}: not a label of any training case; expected "
                         f"one of {sorted(known) or 'none (the cases have no label maps)'}")


def region_weight_map(case: CaseArrays, region_weights: Dict[str, float]) -> np.ndarray:
    """Per-voxel loss weights (K, H, W): 1 everywhere plus ``region_weights[name]`` inside each named label of the
    case's legend (e.g. the gland and the lesions of a phantom case), and inside the derived region "urine" (the
    bladder label deeper than ``URINE_DEPTH_MM`` from its edge: urine, not its enhancing wall); all ones without
    labels or weights."""
    weight = np.ones(case.conditions.shape[1:], dtype=np.float32)
    if not region_weights or case.labels is None or not case.legend:
        return weight
    for name, extra in region_weights.items():
        if name in case.legend:
            weight[case.labels == int(case.legend[name])] += np.float32(extra)
        elif name == "urine" and "bladder" in case.legend:
            weight[urine_mask(case)] += np.float32(extra)
    return weight


def urine_mask(case: CaseArrays) -> np.ndarray:
    """The case's bladder label deeper than ``URINE_DEPTH_MM`` from its edge (K, H, W), in millimetres of its grid."""
    from DCEDiffLib.phantom.realism import urine_mask as urine_of_bladder

    spacing_xyz = case.grid["spacing"]
    return urine_of_bladder(case.labels == int(case.legend["bladder"]), spacing_xyz[::-1])


def conditions_with_context(case: CaseArrays, channels: Sequence[int], k: int, context_slices: int) -> np.ndarray:
    """The condition ``channels`` of slice ``k`` (C, H, W), followed by those of its neighbours when
    ``context_slices`` > 0 (C·(2n+1), H, W; see ``diffusion.slice_context``)."""
    if not context_slices:
        return case.conditions[channels, k]
    from DCEDiffLib.diffusion.slice_context import slice_with_context

    return slice_with_context(case.conditions, k, context_slices, channels)


def fixed_slices(cases: Sequence[CaseArrays], count: int, conditions_kept: Sequence[str] = INPUT_MODALITIES,
                 seed: int = 1234, context_slices: int = 0, absolute_adc: bool = False,
                 t1pre_clip_range_factor: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """A fixed, reproducible set of whole slices (validation loss / sample images); with ``context_slices`` the
    conditions carry the neighbours' channels after the slice's own, with ``absolute_adc`` the ADC in absolute
    units after those (``diffusion.absolute_adc``); with ``t1pre_clip_range_factor`` the targets lie over the
    clipped T1-pre as in :class:`SliceBatches`."""
    usable = [c for c in cases if c.targets is not None]
    items = [(ci, k) for ci, c in enumerate(usable) for k in range(c.num_slices)]
    chosen = np.random.default_rng(seed).permutation(len(items))[:count]
    conds = np.stack([slice_conditions(usable[items[i][0]], items[i][1], conditions_kept, context_slices, absolute_adc)
                      for i in chosen])
    targets = np.stack([np.clip(_slice_targets(usable[items[i][0]], items[i][1], t1pre_clip_range_factor), -1, 1)
                        for i in chosen])
    return torch.from_numpy(conds.astype(np.float32)), torch.from_numpy(targets.astype(np.float32))


def _slice_targets(case: CaseArrays, k: int, t1pre_clip_range_factor: Optional[float]) -> np.ndarray:
    """Slice ``k``'s targets, over the clipped T1-pre when ``t1pre_clip_range_factor`` is given."""
    targets = case.targets[:, k]
    if not t1pre_clip_range_factor:
        return targets
    t1pre = case.conditions[INPUT_MODALITIES.index("t1pre"), k]
    return targets_over_clipped_t1pre(t1pre, targets, t1pre_clip_range_factor)


def slice_conditions(case: CaseArrays, k: int, conditions_kept: Sequence[str] = INPUT_MODALITIES,
                     context_slices: int = 0, absolute_adc: bool = False) -> np.ndarray:
    """The network's condition channels for whole slice ``k`` of ``case`` (C', H, W), clipped to [-1, 1] as in
    training: the kept conditions, the neighbours' with ``context_slices``, the absolute ADC with ``absolute_adc``."""
    channels = [INPUT_MODALITIES.index(m) for m in conditions_kept]
    cond = np.clip(conditions_with_context(case, channels, k, context_slices), -1, 1)
    if absolute_adc:
        adc = case.conditions[INPUT_MODALITIES.index("adc"), k]
        cond = np.concatenate([cond, absolute_adc_channel(adc, case.norm["adc"])[None]])
    return cond
