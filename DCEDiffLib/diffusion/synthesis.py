"""A whole volume through a model: every slice (and every sample) in one sampler batch, chunked for memory.

The sampler sees all K slices × S samples as one batch, so the noise it draws does not depend on the chunk size;
the network is evaluated chunk by chunk under ``torch.inference_mode`` in channels_last layout, with bf16 autocast
on CUDA (and on CPU only when asked for). On CUDA out-of-memory the chunk is halved, then the CPU takes over.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional, Union

import numpy as np
import torch

from DCEDiffLib import defaults
from DCEDiffLib.diffusion.absolute_adc import absolute_adc_channel, adc_index, reads_absolute_adc
from DCEDiffLib.diffusion.error_map import error_models_of_card, expected_error
from DCEDiffLib.diffusion.model_files import LoadedModel, mean_context_slices
from DCEDiffLib.diffusion.residual import predict_mean, zero_enhancement
from DCEDiffLib.diffusion.samplers import sample, sampler_levels
from DCEDiffLib.diffusion.slice_context import volume_with_context
from DCEDiffLib.errors import InputError
from DCEDiffLib.normalization import NormParams
from DCEDiffLib.progress import check_cancel
from DCEDiffLib.sampling_steps import resolve_steps
from DCEDiffLib.t1pre_level import conditions_gland_level


# The shipped model's fast samplers start from the T1-pre at this noise level (measured best on the phantom, see
# docs/diffusion.md "Warm start"); the paper's ancestral sampler and x0 start from pure noise.
DEFAULT_WARM_START = 0.02
# A residual model's sampler starts at this noise level from a zero residual, unless its card's
# sampling.residual_start says otherwise (chosen on validation patients, docs/model_quality.md): from pure noise at
# the noisiest training level the briefly trained residual network is far off (12 dB against 27 dB at 0.5).
DEFAULT_RESIDUAL_START = 0.5
# Slices per network call. On a 2-core CPU 4 slices run about 1.2x faster per slice than 16 (the activations of
# 16 slices no longer fit the caches; docs/performance.md); a GPU wants large batches.
CPU_CHUNK = 4
GPU_CHUNK = 64
WARM_START_SAMPLERS = ("dpmpp", "ddim")


def resolve_warm_start(sampler: str, warm_start: Union[str, float, None],
                       auto_level: Optional[float] = DEFAULT_WARM_START) -> Optional[float]:
    """'auto' → ``auto_level`` (the model's default start level) for dpmpp/ddim, None (pure noise) otherwise;
    'none' → None; a number in (0, 1) → itself."""
    if warm_start is None or (isinstance(warm_start, str) and warm_start.lower() == "none"):
        return None
    if isinstance(warm_start, str) and warm_start.lower() == "auto":
        return auto_level if sampler in WARM_START_SAMPLERS else None
    try:
        value = float(warm_start)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise InputError(f"warm start {warm_start!r}: expected 'auto', 'none' or a noise level between 0 and 1")
    return value


@dataclasses.dataclass
class SynthesisResult:
    """``mean`` (2, K, H, W) in [-1, 1]; ``std`` (2, K, H, W) over samples, or None for one sample;
    ``expected_error`` (2, K, H, W), normalised units: the card's error model applied to ``mean``, or None when the
    card has none (see :mod:`DCEDiffLib.diffusion.error_map`; around the prostate, when the card has trees for it,
    :mod:`DCEDiffLib.diffusion.learned_error_map`)."""

    mean: np.ndarray
    std: Optional[np.ndarray]
    nfe: int
    seconds: float
    device: str
    precision: str
    notes: list = dataclasses.field(default_factory=list)
    warm_start: Optional[float] = None
    expected_error: Optional[np.ndarray] = None


def resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda requested, but torch sees no CUDA GPU; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise InputError(f"device {device!r}: expected auto, cpu or cuda")
    return torch.device(device)


def _precision(precision: str, device: torch.device) -> str:
    """'fp32'/'bf16' as asked; 'auto' → bf16 on CUDA, and on a CPU with native bf16 whose measured difference to
    fp32 is within the bound, else fp32 (:func:`DCEDiffLib.precision.choose_precision`, which also says why)."""
    from DCEDiffLib.precision import choose_precision

    return choose_precision(precision, device.type).used


class _ChunkedNetwork:
    """eps_fn over a big batch: concatenates the matching condition rows and runs the network chunk by chunk."""

    def __init__(self, network, cond: torch.Tensor, chunk: int, precision: str, notes: list):
        self.network, self.cond, self.chunk = network, cond, chunk
        self.precision, self.notes = precision, notes

    def _run(self, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        device = x.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.network(x.contiguous(memory_format=torch.channels_last), gamma)
        return out.float()

    def __call__(self, y: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        outputs = []
        start = 0
        while start < y.shape[0]:
            stop = min(start + self.chunk, y.shape[0])
            x = torch.cat([self.cond[start:stop], y[start:stop]], dim=1)
            try:
                outputs.append(self._run(x, gamma[start:stop]))
            except torch.cuda.OutOfMemoryError:
                if self.chunk == 1:
                    raise
                torch.cuda.empty_cache()
                self.chunk = max(1, self.chunk // 2)
                self.notes.append(f"GPU out of memory: retrying with chunks of {self.chunk} slices")
                continue
            start = stop
        return torch.cat(outputs)


def synthesize_volume(model: LoadedModel, conditions: np.ndarray, *, sampler: str = defaults.DEFAULT_SAMPLER,
                      steps: Optional[int] = None, samples: int = defaults.DEFAULT_SAMPLES, seed: int = 0,
                      device: str = "auto", batch_size: Optional[int] = None,
                      precision: str = "auto", progress: Optional[Callable[[int, int], None]] = None,
                      should_cancel: Optional[Callable[[], bool]] = None,
                      skip_below_train_min: bool = False, warm_start: Union[str, float, None] = "auto",
                      voxel_corrector: bool = True, adc_norm: Optional[NormParams] = None) -> SynthesisResult:
    """Synthesize early/late for a volume of conditions (C, K, H, W), normalised, in the card's channel order.

    ``steps`` None is the model's own count (``sampling_steps.resolve_steps``).
    ``skip_below_train_min`` (ddpm only) drops the levels of the 1000-step schedule noisier than any level seen
    in training (532 of the 1000; see ``schedules.ancestral_grid``). ``warm_start`` = γs starts the sampler at
    noise level γs from the T1-pre mapped to the targets' scale (zero enhancement) instead of pure noise (see
    ``samplers.sample`` and docs/diffusion.md); None or 'none' samples from pure noise, as the paper does; 'auto'
    (default) is :func:`resolve_warm_start`. ``voxel_corrector`` False leaves out the card's voxel corrector
    (``voxel_corrector.py``; its fitting needs the output without it). ``adc_norm``: the ADC's normalisation,
    needed by a model whose mean network reads the ADC in absolute units (``absolute_adc.py``).
    """
    conditions = np.asarray(conditions, dtype=np.float32)
    expected = len(model.card["conditions"])
    if conditions.ndim != 4 or conditions.shape[0] != expected:
        raise InputError(f"conditions: expected shape ({expected}, K, H, W) for {model.card['conditions']}, "
                         f"got {conditions.shape}")
    if not np.isfinite(conditions).all():
        raise InputError("conditions contain NaN or Inf values")
    if samples < 1:
        raise InputError(f"samples {samples}: expected 1 or more")
    steps = resolve_steps(model.card, sampler, steps)
    mean_extra = _absolute_adc_input(model.card, conditions, adc_norm)
    dev = resolve_device(device)
    # A regression needs no sampler; a residual model starts its residual at zero ("the mean is right") noised to the
    # start level, as the image models start from the T1-pre (see resolve_warm_start).
    objective = model.card.get("objective", "diffusion")
    auto_level = DEFAULT_WARM_START
    if objective == "residual":  # the card's level, chosen on validation patients; null there = pure noise
        auto_level = model.card.get("sampling", {}).get("residual_start", DEFAULT_RESIDUAL_START)
    warm_start = resolve_warm_start(sampler, warm_start, auto_level) if objective != "regression" else None
    try:
        result = _synthesize(model, conditions, sampler, steps, samples, seed, dev, batch_size,
                             _precision(precision, dev), progress, should_cancel, [], skip_below_train_min, warm_start,
                             mean_extra)
    except torch.cuda.OutOfMemoryError:
        notes = ["GPU out of memory even with chunks of 1 slice: fell back to the CPU"]
        torch.cuda.empty_cache()
        result = _synthesize(model, conditions, sampler, steps, samples, seed, torch.device("cpu"), batch_size,
                             "fp32", progress, should_cancel, notes, skip_below_train_min, warm_start, mean_extra)
    if voxel_corrector and getattr(model, "corrector", None) is not None:
        result.mean = apply_voxel_corrector(model, conditions, result.mean)
        result.notes.append("voxel corrector applied around the prostate")
    tables = error_models_of_card(model.card, model.card["targets"])
    if tables is not None:
        # the T1 protocol sets the error level (error_map); measured as t1pre_level.rescale_low_t1pre measures it
        level = conditions_gland_level(conditions, model.card["conditions"])
        zero = None  # the T1-pre on the targets' scale, for the drawn enhancement (error_map.enhancement_factor)
        if any("enhancement_factor" in table for table in tables.values()) or \
                getattr(model, "learned_error_map", None) is not None:
            ordered, zero = voxel_corrector_inputs(model.card, conditions)
        result.expected_error = np.stack([expected_error(result.mean[i], tables[t], t1pre_level=level,
                                                         zero_enhancement=zero)
                                          for i, t in enumerate(model.card["targets"])])
        if getattr(model, "learned_error_map", None) is not None:  # trees around the prostate, edges elsewhere
            result.expected_error = model.learned_error_map.blend(result.mean, ordered, zero, result.expected_error)
    return result


def voxel_corrector_inputs(card: dict, conditions: np.ndarray):
    """(t2w, pd, adc, t1pre) from ``conditions`` (C, K, H, W) in the card's order, clipped as the networks see them,
    and the zero enhancement (K, H, W): the T1-pre on the targets' scale (``residual.zero_enhancement``)."""
    names = list(card["conditions"])
    missing = [m for m in ("t2w", "pd", "adc", "t1pre") if m not in names]
    if missing:
        raise InputError(f"the voxel corrector needs the conditions t2w, pd, adc and t1pre; the card lacks {missing}")
    ordered = np.clip(np.stack([conditions[names.index(m)] for m in ("t2w", "pd", "adc", "t1pre")]), -1, 1)
    factor = float(card.get("normalization", {}).get("target_range_factor", 3.0))
    return ordered, (ordered[3] + 1.0) / factor - 1.0


def apply_voxel_corrector(model: LoadedModel, conditions: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """The card's voxel corrector on a synthesis: ``conditions`` (C, K, H, W) in the card's order, ``synthetic``
    (2, K, H, W) on the targets' scale."""
    ordered, zero = voxel_corrector_inputs(model.card, conditions)
    return model.corrector.correct(synthetic, ordered, zero)


def t1pre_start(model: LoadedModel, cond: torch.Tensor) -> torch.Tensor:
    """Zero enhancement as a first estimate of both targets: the T1-pre condition channel mapped to the targets'
    T1-pre-relative scale (its [-1, 1] becomes [-1, -1 + 2/f], see ``target_scale``)."""
    conditions = list(model.card["conditions"])
    if "t1pre" not in conditions:
        raise InputError(f"a warm start needs the T1-pre condition; this model's conditions are {conditions}")
    factor = float(model.card.get("normalization", {}).get("target_range_factor", 3.0))
    return zero_enhancement(cond, conditions, factor, len(model.card["targets"]))


def _absolute_adc_input(card: dict, conditions: np.ndarray, adc_norm: Optional[NormParams]) -> Optional[np.ndarray]:
    """The absolute-ADC channel a card's mean network reads after its conditions, as (K, 1, H, W) — the slices' order
    of the network input — or None."""
    if not reads_absolute_adc(card):
        return None
    if adc_norm is None:
        raise InputError("this model's mean network reads the ADC in absolute units: its normalisation (adc_norm) "
                         "is needed with the conditions; expected the case's NormParams of the ADC")
    return absolute_adc_channel(conditions[adc_index(card["conditions"])], adc_norm)[:, None]


def _mean_input(cond: torch.Tensor, context_slices: int, extra: Optional[torch.Tensor]) -> torch.Tensor:
    """The mean network's input for the K slices ``cond`` (K, C, H, W): the conditions, their neighbours' (2.5D) and
    the absolute-ADC channel ``extra`` (K, 1, H, W) when the network reads it."""
    wide = volume_with_context(cond, context_slices)
    return wide if extra is None else torch.cat([wide, extra.to(wide.dtype)], 1)


def _residual_sample(network, cond, samples, chunk, precision, sampler, steps, seed, dev, progress, should_cancel,
                     notes, skip_below_train_min, start_gamma=None, mean_extra=None):
    """μ once per slice (the same for every sample), then the residual sampled from pure noise; (y0, NFE)."""
    check_cancel(should_cancel)
    slices = cond.shape[0] // samples
    means = []
    # cond is sample-major: the first K rows are the K slices once (in order, so the neighbours are at hand)
    unique = _mean_input(cond[:slices], getattr(network, "mean_context_slices", 0), mean_extra)
    for start in range(0, slices, chunk):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            means.append(network.mean(unique[start:start + chunk]).float())
    mean = torch.cat(means).repeat(samples, 1, 1, 1)
    total = len(sampler_levels(sampler, steps, skip_below_train_min, start_gamma)) + 1

    def callback(info):
        if progress is not None:
            progress(info["step"] + 1, total)

    if progress is not None:
        progress(1, total)
    residual_fn = _ChunkedNetwork(network, torch.cat([cond, mean], 1), chunk, precision, notes)
    # Each residual estimate is clamped so that μ + s·r̂ stays in the image range [-1, 1]: the image samplers'
    # clamp, in the residual's units (unclamped, ε-prediction at the noisiest levels blows up, see docs/diffusion.md).
    scale = network.residual_scale
    bounds = ((-1.0 - mean) / scale, (1.0 - mean) / scale)
    start, noise = None, None
    if start_gamma is not None:
        # The residual is scaled to unit variance, so its noised marginal at any level is ≈ N(0, 1): start from unit
        # noise there (a zero "start" with the noise rescaled so the sampler's √γ·0 + √(1−γ)·n is exactly that).
        first = float(sampler_levels(sampler, steps, skip_below_train_min, start_gamma)[0])
        generator = torch.Generator(device=dev).manual_seed(int(seed) + 7919)  # not the sampler's own stream
        noise = torch.randn(tuple(mean.shape), generator=generator, device=dev) / math.sqrt(1.0 - first)
        start = torch.zeros_like(mean)
    residual = sample(residual_fn, tuple(mean.shape), sampler=sampler, steps=steps, seed=seed, callback=callback,
                      should_cancel=should_cancel, device=dev, skip_below_train_min=skip_below_train_min,
                      clamp=bounds, start=start, start_gamma=start_gamma, noise=noise)
    # The card's residual_temperature (≤ 1, chosen on validation) scales the sampled residual: a calibrated sample
    # adds as much variance as the error of the mean, which halves a correlation the mean already has.
    temperature = float(getattr(network, "temperature", 1.0))
    return network.combine(mean, temperature * residual), total


def _synthesize(model, conditions, sampler, steps, samples, seed, dev, batch_size, precision, progress,
                should_cancel, notes, skip_below_train_min=False, warm_start=None, mean_extra=None) -> SynthesisResult:
    started = time.perf_counter()
    network = model.network.to(dev).to(memory_format=torch.channels_last)
    slices = conditions.shape[1]
    cond = torch.from_numpy(np.ascontiguousarray(np.clip(conditions, -1, 1).transpose(1, 0, 2, 3))).to(dev)
    cond = cond.repeat(samples, 1, 1, 1)  # (S*K, C, H, W), sample-major
    chunk = batch_size or (GPU_CHUNK if dev.type == "cuda" else CPU_CHUNK)
    if mean_extra is not None:
        mean_extra = torch.from_numpy(np.ascontiguousarray(mean_extra)).to(dev)
    eps_fn = _ChunkedNetwork(network, cond, chunk, precision, notes)
    shape = (cond.shape[0], len(model.card["targets"])) + tuple(cond.shape[2:])
    objective = model.card.get("objective", "diffusion")
    with torch.inference_mode():
        if objective == "regression":
            check_cancel(should_cancel)
            card = model.card
            outputs = []
            wide = _mean_input(cond[:slices], mean_context_slices(card), mean_extra).repeat(samples, 1, 1, 1)
            for start in range(0, cond.shape[0], chunk):
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    outputs.append(predict_mean(network, wide[start:start + chunk],
                                                card.get("parameterization", "image"), card["conditions"],
                                                card["normalization"].get("target_range_factor", 3.0)).float())
            y0 = torch.cat(outputs).clamp(-1, 1)
            nfe = 1
            if progress is not None:
                progress(1, 1)
        elif objective == "residual":
            y0, nfe = _residual_sample(network, cond, samples, chunk, precision, sampler, steps, seed, dev,
                                       progress, should_cancel, notes, skip_below_train_min, warm_start, mean_extra)
        else:
            total = len(sampler_levels(sampler, steps, skip_below_train_min, warm_start))
            start = t1pre_start(model, cond) if warm_start is not None else None

            def callback(info):
                if progress is not None:
                    progress(info["step"], total)

            y0 = sample(eps_fn, shape, sampler=sampler, steps=steps, seed=seed, callback=callback,
                        should_cancel=should_cancel, device=dev, skip_below_train_min=skip_below_train_min,
                        start=start, start_gamma=warm_start)
            nfe = total
    values = y0.float().reshape(samples, slices, shape[1], *shape[2:]).permute(0, 2, 1, 3, 4).cpu().numpy()
    mean = values.mean(axis=0).astype(np.float32)
    std = values.std(axis=0).astype(np.float32) if samples > 1 else None
    return SynthesisResult(mean, std, nfe, time.perf_counter() - started, dev.type, precision, notes, warm_start)
