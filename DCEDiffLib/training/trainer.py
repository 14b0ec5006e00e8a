"""The training loop (paper Algorithm 1): Adam, linear warm-up, EMA, gradient clipping, checkpoints, resume, DDP.

Run by ``dcediff train`` (one process) or ``torchrun --nproc_per_node=G -m DCEDiffLib.cli train`` (DDP).
Outputs in the run folder: ``split.json``, ``config.json``, ``log.csv``, ``checkpoints/last.*`` (resume),
``model.safetensors|json`` (EMA weights at the end) and ``best.safetensors|json`` (lowest validation loss),
``best_lesion.safetensors|json`` (highest validation lesion r, with ``lesion_validation``; lesion_validation.py),
``samples/step_XXXXXX.png``, and ``tensorboard/`` when enabled.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from DCEDiffLib.atomic import write_text_atomic
from DCEDiffLib.diffusion.absolute_adc import reads_absolute_adc
from DCEDiffLib.diffusion.model_files import mean_context_slices
from DCEDiffLib.errors import InputError
from DCEDiffLib.modalities import TARGET_MODALITIES
from DCEDiffLib.precision import NATIVE_BF16_FLAGS, native_bf16_flags
from DCEDiffLib.training import distributed
from DCEDiffLib.training.batches import SliceBatches, fixed_slices
from DCEDiffLib.training.case_data import list_case_dirs, load_case, naming_the_case
from DCEDiffLib.training.case_identity import check_same_patients, identities, patient_groups
from DCEDiffLib.training.checkpoint import load_checkpoint, save_checkpoint
from DCEDiffLib.training.config import condition_modalities
from DCEDiffLib.training.ema import EMA
from DCEDiffLib.training.split import read_split, split_cases, write_split
from DCEDiffLib.training.step_loader import step_batches

LOG_FIELDS = ["step", "loss", "lr", "val_loss", "val_lesion_r", "val_gland_r", "seconds", "steps_per_second"]


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 7]).integers(0, 2**62))


def _float_or_zero(value) -> float:
    """A log.csv cell as a number (an old or hand-edited log may have it blank)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _blank_if_none(value: Optional[float]):
    return "" if value is None else value


def learning_rate(config: dict, step: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant (``lr_schedule`` "constant", the paper's
    schedule) or a half cosine from ``lr`` down to 0 at ``iterations`` ("cosine": an annealing fine-tune; a run at a
    constant rate ends wherever its noise leaves it)."""
    warmup = int(config["warmup_steps"])
    if warmup > 0 and step + 1 < warmup:
        return config["lr"] * (step + 1) / warmup
    if config.get("lr_schedule", "constant") != "cosine":
        return config["lr"]
    span = max(int(config["iterations"]) - warmup, 1)
    progress = min(max(step + 1 - warmup, 0) / span, 1.0)
    return config["lr"] * 0.5 * (1.0 + math.cos(math.pi * progress))


def load_split_cases(data_dir: Path, out_dir: Path, config: dict, ctx, workers: int = 1,
                     report: Optional[Callable[[str], None]] = None, cache_dir: Optional[Path] = None) -> dict:
    """Split the data folder by patient (or reuse ``split.json`` of a resumed run) and load every case."""
    case_dirs = {p.name: p for p in list_case_dirs(data_dir)}
    split_path = out_dir / "split.json"
    if split_path.is_file():
        split = read_split(split_path)
        missing = [n for key in ("train", "validation") for n in split[key] if n not in case_dirs]
        if missing:
            raise InputError(f"{split_path} names cases missing from {data_dir}: {', '.join(missing[:5])}")
        check_same_patients(split, case_dirs, split["train"] + split["validation"], f"--data {data_dir}")
        added = sorted(set(case_dirs) - {n for key in ("train", "validation", "test") for n in split.get(key, [])})
        if added and report:
            report(f"note: {len(added)} case(s) of {data_dir} are not in this run's split.json ("
                   f"{', '.join(added[:5])}{', …' if len(added) > 5 else ''}) and are not used; a new run (--fresh, "
                   "or a new --out) splits them in")
    else:
        patients = patient_groups(case_dirs)  # two studies (or copies) of one patient go to one set
        split = split_cases(list(case_dirs), tuple(config["split"]), config["split_seed"], patients)
        # which patients the names stand for: a resumed run or an evaluation checks them (case_identity.py)
        split["data"] = str(Path(data_dir).resolve())
        split["identities"] = identities(case_dirs, sorted(case_dirs))
        split["patients"] = {name: patients[name] for name in sorted(case_dirs)}
        if ctx.is_main:
            write_split(split_path, split)
    cache = Path(cache_dir) if cache_dir else out_dir / "cache"
    names = split["train"] + split["validation"]
    if ctx.is_main:  # rank 0 preprocesses and caches; the others then read the cache
        _load_parallel([case_dirs[n] for n in names], cache, workers, report)
    ctx.barrier()
    loaded = {n: load_case(case_dirs[n], cache) for n in names}
    without_dce = [n for n in names if loaded[n].targets is None]
    if without_dce:  # a training or validation case needs what the model learns to draw
        raise InputError(f"--data {data_dir}: {len(without_dce)} case(s) have no acquired DCE (dce_early and "
                         f"dce_late): {', '.join(without_dce[:5])}{', …' if len(without_dce) > 5 else ''}; expected "
                         "training cases with both (dcediff dataset puts cases without DCE in no_dce/, which "
                         "training does not read): move them out of the data folder")
    return {"split": split, "train": [loaded[n] for n in split["train"]],
            "validation": [loaded[n] for n in split["validation"]]}


def _load_parallel(dirs: List[Path], cache: Path, workers: int, report) -> None:
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    if workers > 1 and len(dirs) > 1:
        # the worker processes share the cores: one registration at a time in each
        with ProcessPoolExecutor(workers, initializer=_one_thread_worker) as pool:
            for index, _ in enumerate(pool.map(_cache_one, dirs, [cache] * len(dirs))):
                if report and (index + 1) % 10 == 0:
                    report(f"preprocessed {index + 1}/{len(dirs)} cases")
    else:
        for index, d in enumerate(dirs):
            _cache_one(d, cache)
            if report and (index + 1) % 10 == 0:
                report(f"preprocessed {index + 1}/{len(dirs)} cases")
    if report:
        report(f"{len(dirs)} training and validation cases ready (test cases are not loaded) in "
               f"{time.perf_counter() - started:.0f} s")


def _one_thread_worker() -> None:
    """Initializer of the preprocessing pool's processes: one registration and one torch thread each (they share
    the cores). Only there: set in the training process itself, the thread limit would outlive the loading and slow
    every training step (a run with --workers 1 trained on one core)."""
    from DCEDiffLib.registration_schedule import limit_workers

    limit_workers(1)
    torch.set_num_threads(1)


def _cache_one(case_dir: Path, cache: Path) -> None:
    # Returns nothing on purpose: a pool worker would otherwise send every case's arrays back to be thrown away
    with naming_the_case(case_dir):  # a preprocessed case's errors say "case NAME", not which folder
        load_case(case_dir, cache)


def emulated_bf16_warning(config: dict, device_type: str, flags: Optional[Sequence[str]] = None) -> Optional[str]:
    """A warning for a config that asks for bf16 autocast on a CPU without native bf16 (``flags`` default to this
    CPU's), where autocast is emulated; None otherwise. Measured 2026-12-04 on an AMD EPYC without it: the residual
    fine-tune of configs/cpu_residual_deep480.json made fewer than 25 steps in 8 minutes in bf16, 0.79 steps/s in
    fp32."""
    if config.get("mixed_precision") != "bf16" or device_type != "cpu" or native_bf16_flags(flags):
        return None
    return ("training config mixed_precision 'bf16' on a CPU without native bf16 (none of "
            f"{', '.join(NATIVE_BF16_FLAGS)}): autocast runs emulated, more than 15 times slower than fp32 here; "
            "set it to 'auto' or 'fp32' for this machine")


class Trainer:
    """Holds the network, EMA, optimizer and data of one run; ``run()`` trains to ``config['iterations']``."""

    def __init__(self, config: dict, out_dir: Path, data: dict, ctx: distributed.DistContext,
                 show_progress: bool = True):
        """``data``: {"split": dict, "train": [CaseArrays], "validation": [CaseArrays]} (see ``from_folder``)."""
        from DCEDiffLib.diffusion.presets import build_network, network_config

        self.config = config
        self.out_dir = Path(out_dir)
        self.ctx = ctx
        self.process_counts = [ctx.world_size]  # per segment of the run (resume may change it)
        self.recipe_changes: list = []  # a curriculum's stages resumed with --change-recipe
        if config["threads"]:
            torch.set_num_threads(int(config["threads"]))
        self.show_progress = show_progress and self.ctx.is_main
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.conditions = condition_modalities(config)
        self.data = data
        if not self.data["validation"]:
            raise InputError("the split has no validation case; add cases or change 'split'")
        model_overrides = {k: v for k, v in config["model"].items() if k != "preset"}
        self.mean_model = None
        self.residual_scale = None
        self.initial_sampling: Optional[dict] = None  # a residual init_weights card's sampling settings (kept)
        extra_inputs = 0
        # 2.5D (diffusion/slice_context.py): a regression run's own context; a residual run reads its mean's, and
        # its batches carry the neighbours for the mean alone (the residual network sees the first C channels)
        self.context_slices = int(config["context_slices"])
        # likewise the ADC in absolute units (diffusion/absolute_adc.py), one channel after the conditions
        self.absolute_adc = bool(config["absolute_adc"])
        condition_channels = len(self.conditions) * (2 * self.context_slices + 1) + int(self.absolute_adc)
        if config["objective"] == "residual":
            self.mean_model = self._load_mean_model(config["mean_model"])
            extra_inputs = len(TARGET_MODALITIES)  # the mean μ is a condition of the residual network
            self.context_slices = mean_context_slices(self.mean_model.card)
            self.absolute_adc = reads_absolute_adc(self.mean_model.card)
            condition_channels = len(self.conditions)
        self.network_config = network_config(config["model"].get("preset", "paper"),
                                             in_channels=condition_channels + extra_inputs
                                             + len(TARGET_MODALITIES),
                                             out_channels=len(TARGET_MODALITIES), **model_overrides)
        torch.manual_seed(config["seed"])  # identical initial weights on every rank
        self.network = build_network(self.network_config).to(self.ctx.device)
        if config["init_weights"]:
            self._load_initial_weights(config["init_weights"])
        self.ema = EMA(self.network, config["ema_decay"])
        # A training-only head on the network's last features (never exported; auxiliary_segmentation.py)
        self.segmentation_head = None
        self.companions = {}
        parameters = list(self.network.parameters())
        if config["aux_segmentation_weight"]:
            from DCEDiffLib.training.auxiliary_segmentation import AuxiliarySegmentationHead

            self.segmentation_head = AuxiliarySegmentationHead.for_network(self.network).to(self.ctx.device)
            self.companions = {"segmentation_head": self.segmentation_head}
            parameters += list(self.segmentation_head.parameters())
        self.optimizer = torch.optim.Adam(parameters, lr=config["lr"],
                                          betas=tuple(config["adam_betas"]), weight_decay=config["weight_decay"])
        t1pre_clip_factor = self._t1pre_clip_factor()
        self.batches = SliceBatches(self.data["train"], config["batch_size"], config["crop_size"], config["seed"],
                                    self.conditions, config["flip_left_right"], self.ctx.rank, self.ctx.world_size,
                                    config["region_weights"], config["augment"], config["lesion_slice_share"],
                                    config["lesion_ring_px"] if self._needs_lesion_masks() else 0,
                                    self.context_slices, segmentation=self.segmentation_head is not None,
                                    absolute_adc=self.absolute_adc, t1pre_clip_range_factor=t1pre_clip_factor)
        self.val_cond, self.val_target = fixed_slices(self.data["validation"], config["validation_slices"],
                                                      self.conditions, context_slices=self.context_slices,
                                                      absolute_adc=self.absolute_adc,
                                                      t1pre_clip_range_factor=t1pre_clip_factor)
        # The lesion r of the predicted enhancement on the validation lesion slices (regression runs that ask)
        self.lesion_slices = None
        if config["lesion_validation"]:
            from DCEDiffLib.training.lesion_validation import lesion_slices

            self.lesion_slices = lesion_slices(self.data["validation"], self.conditions, self.context_slices,
                                               self.absolute_adc)
            if self.lesion_slices is None:
                raise InputError("training config: lesion_validation needs validation cases with acquired DCE and a "
                                 "lesion label; no validation case of this split has both")
        if self.mean_model is not None:
            self.residual_scale = self._measure_residual_scale()
        self.step = 0
        self.best_val = math.inf
        self.best_lesion_r = -math.inf
        self.train_model = self.network
        if self.ctx.distributed:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.network, device_ids=[self.ctx.local_rank] if self.ctx.device.type == "cuda" else None)
        precision = config["mixed_precision"]
        self.autocast = (precision == "bf16") or (precision == "auto" and self.ctx.device.type == "cuda")
        self.tensorboard = None

    @classmethod
    def from_folder(cls, config: dict, data_dir: Path, out_dir: Path, device: str = "auto",
                    preprocess_workers: int = 1, show_progress: bool = True,
                    cache_dir: Optional[Path] = None) -> "Trainer":
        """Set up distribution, split ``data_dir`` by patient, load (and cache) its cases, build the trainer."""
        ctx = distributed.setup(device)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        say = (lambda m: print(f"[dcediff train] {m}", flush=True)) if ctx.is_main else None
        warning = emulated_bf16_warning(config, ctx.device.type)
        if warning and say:  # before the preprocessing, which can take an hour, so that the run can be stopped
            say(f"warning: {warning}")
        data = load_split_cases(Path(data_dir), out_dir, config, ctx, preprocess_workers, say, cache_dir)
        return cls(config, out_dir, data, ctx, show_progress)

    # -- helpers -------------------------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        if self.ctx.is_main:
            from tqdm import tqdm

            tqdm.write(f"[dcediff train] {message}")

    def _load_mean_model(self, path: str):
        """The frozen regression model a residual run diffuses around (same conditions required)."""
        from DCEDiffLib.diffusion.model_files import load_model

        mean_model = load_model(path, device=str(self.ctx.device))
        if mean_model.card["objective"] != "regression":
            raise InputError(f"mean_model {path}: objective {mean_model.card['objective']!r}; a residual run needs "
                             "a regression model (dcediff train with objective 'regression')")
        if mean_model.card["conditions"] != self.conditions:
            raise InputError(f"mean_model {path}: conditions {mean_model.card['conditions']}; this run uses "
                             f"{self.conditions}")
        for parameter in mean_model.network.parameters():
            parameter.requires_grad_(False)
        return mean_model

    @torch.no_grad()
    def _load_initial_weights(self, path: str) -> None:
        """Start from a trained model's weights (``init_weights``): the same objective, conditions and network
        config are required, so a fine-tuning run cannot silently start from a different network. For a residual
        model file the residual network's weights are taken (its mean comes from ``mean_model``)."""
        from DCEDiffLib.diffusion.model_files import load_model
        from DCEDiffLib.diffusion.network_growth import deepen_res_blocks, insert_zero_input_channels, is_deepened

        model = load_model(path, device="cpu")
        card = model.card
        if card["objective"] != self.config["objective"]:
            raise InputError(f"init_weights {path}: objective {card['objective']!r}; this run trains "
                             f"{self.config['objective']!r}")
        if card["conditions"] != self.conditions:
            raise InputError(f"init_weights {path}: conditions {card['conditions']}; this run uses {self.conditions}")
        source_context = mean_context_slices(card) if card["objective"] == "regression" else 0
        widen = card["objective"] == "regression" and source_context == 0 and self.context_slices > 0
        # a mean network without the absolute-ADC channel may start one with it (never the other way round)
        source_absolute = reads_absolute_adc(card)  # False for any card but a regression one
        add_absolute = card["objective"] == "regression" and self.absolute_adc and not source_absolute
        if source_absolute and not self.absolute_adc:
            raise InputError(f"init_weights {path}: it reads the ADC in absolute units, this run does not; expected "
                             "absolute_adc true in the training config")
        if widen and add_absolute:
            raise InputError(f"init_weights {path}: widening to context slices and adding the absolute-ADC channel "
                             "in one run is not supported; expected one change at a time")
        own_config = dict(self.network_config)
        if widen or add_absolute:  # a narrower mean network starts this run: compare all but the input width
            own_config["in_channels"] = card["architecture"]["config"].get("in_channels")
        elif card["objective"] == "regression" and source_context != self.context_slices:
            raise InputError(f"init_weights {path}: it reads {source_context} context slices, this run "
                             f"{self.context_slices}; expected the same, or a 2D network (0) to widen")
        deepen = False
        if json.loads(json.dumps(card["architecture"]["config"])) != json.loads(json.dumps(own_config)):
            reason = "a network widened by input channels is not also deepened" if widen or add_absolute else ""
            try:  # a 1-block-per-level network may start a deeper one (network_growth.py); nothing else may differ
                deepen = not (widen or add_absolute) and is_deepened(card["architecture"]["config"], own_config)
            except ValueError as exc:
                reason = str(exc)
            if not deepen:
                raise InputError(f"init_weights {path}: its network config differs from this run's (preset "
                                 f"{self.config['model'].get('preset', 'paper')!r} and overrides: {reason}); expected "
                                 "the same, or the same with more residual blocks per level than its 1")
        source = model.network.residual_network if card["objective"] == "residual" else model.network
        if deepen:
            deepen_res_blocks(source, self.network)
            self._say(f"init_weights {path}: deepened from 1 to {own_config['res_blocks']} residual blocks per level "
                      "(the added blocks start as identities: the same function)")
        elif widen:
            from DCEDiffLib.diffusion.slice_context import widen_first_convolution

            widen_first_convolution(source, self.network, len(self.conditions), self.context_slices)
            self._say(f"init_weights {path}: a 2D network widened to {self.context_slices} context slices a side "
                      "(the neighbours' weights start at zero: the same function)")
        elif add_absolute:
            insert_zero_input_channels(source, self.network, len(self.conditions) * (2 * self.context_slices + 1))
            self._say(f"init_weights {path}: the absolute-ADC channel added (its weights start at zero: the same "
                      "function)")
        else:
            self.network.load_state_dict(source.state_dict())
        # A residual card's sampling settings (temperature, start) were chosen for the network being fine-tuned; a
        # card without them means temperature 1, which was −1.5 dB on validation once (docs/model_quality.md)
        if card["objective"] == "residual" and isinstance(card.get("sampling"), dict):
            sampling = dict(card["sampling"])
            sampling["chosen_on"] = (f"carried over from init_weights {path} (there: "
                                     f"{card['sampling'].get('chosen_on', 'no note')}); not re-tuned for this run")
            self.initial_sampling = sampling

    @torch.no_grad()
    def _mean_of(self, cond: torch.Tensor) -> torch.Tensor:
        from DCEDiffLib.diffusion.residual import predict_mean

        card = self.mean_model.card
        return predict_mean(self.mean_model.network, cond, card.get("parameterization", "image"),
                            card["conditions"], card["normalization"]["target_range_factor"]).clamp(-1, 1)

    def _measure_residual_scale(self) -> float:
        """Std of (target − μ) over fixed training slices: the residual is divided by it to be of unit scale. The
        targets are the ones the loss diffuses (over the clipped T1-pre where the run keeps to it; until session 54
        the scale was measured on unclipped targets, so such a run's residual was not of unit scale)."""
        cond, target = fixed_slices(self.data["train"], 64, self.conditions, seed=99,
                                    context_slices=self.context_slices, absolute_adc=self.absolute_adc,
                                    t1pre_clip_range_factor=self._t1pre_clip_factor())
        residuals = []
        for start in range(0, len(cond), 8):
            c = cond[start:start + 8].to(self.ctx.device)
            residuals.append((target[start:start + 8].to(self.ctx.device) - self._mean_of(c)).float().cpu())
        return round(float(torch.cat(residuals).std()), 5)

    def _needs_lesion_masks(self) -> bool:
        """Whether the batches carry lesion masks: the lesion-contrast and lesion-correlation terms read them."""
        return bool(self.config["lesion_contrast_weight"] or self.config["lesion_correlation_weight"])

    def _parameterization_terms(self, cond: torch.Tensor):
        """(base, gain) of this regression's parameterization: y0 = base + gain × output (None: 0 and 1)."""
        from DCEDiffLib.diffusion.residual import parameterization_terms
        from DCEDiffLib.target_scale import RANGE_FACTOR

        return parameterization_terms(cond, self.config["parameterization"], self.conditions, RANGE_FACTOR,
                                      len(TARGET_MODALITIES))

    def _loss(self, network, cond: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
              weights: Optional[torch.Tensor] = None, contrast_masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The training loss of this objective; ``contrast_masks`` (training only) add the lesion-contrast term."""
        from DCEDiffLib.diffusion.objectives import diffusion_loss, regression_loss

        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            if self.config["objective"] == "regression":
                base, gain = self._parameterization_terms(cond)
                return regression_loss(network, cond, target, base, weights, contrast_masks,
                                       self.config["lesion_contrast_weight"], gain, self.config["regression_norm"],
                                       self.config["lesion_correlation_weight"],
                                       self.config["lesion_correlation_region"])
            if self.config["objective"] == "residual":
                mean = self._mean_of(cond).to(cond.dtype)
                residual = (target - mean) / self.residual_scale
                return diffusion_loss(network, torch.cat([cond[:, :len(self.conditions)], mean], 1), residual,
                                      generator=generator, weights=weights)
            return diffusion_loss(network, cond, target, generator=generator, weights=weights)

    def _checkpoint_stem(self) -> Path:
        return self.out_dir / "checkpoints" / "last"

    # -- the loop ------------------------------------------------------------------------------------------
    def resume(self, change_recipe: bool = False) -> bool:
        """Continue from ``checkpoints/last`` if it exists and was trained with this recipe; returns whether it did.
        A checkpoint trained with another recipe is refused (``resume_check``) unless ``change_recipe`` (a
        curriculum's next stage: the card's ``recipe_changes`` records it); one written by another number of
        processes is resumed with a warning (the global batch changes), and the card lists the counts."""
        from DCEDiffLib.training.resume_check import check_resumable, describe_changes

        changes = check_resumable(self._checkpoint_stem().with_suffix(".json"), self.config, self.out_dir,
                                  change_recipe)
        meta = load_checkpoint(self._checkpoint_stem(), self.network, self.ema, self.optimizer, self.companions)
        if meta is None:
            return False
        self.recipe_changes = list(meta.get("recipe_changes", []))
        if changes:
            self.recipe_changes.append({"step": int(meta["step"]),
                                        "changes": {key: [old, new] for key, old, new in changes}})
            self._say(f"the recipe changes at step {int(meta['step'])} (--change-recipe): {describe_changes(changes)}")
        self.step = int(meta["step"])
        self.best_val = float(meta.get("best_val", math.inf))
        self.best_lesion_r = float(meta.get("best_lesion_r", -math.inf))
        if changes and (math.isfinite(self.best_val) or math.isfinite(self.best_lesion_r)):
            # a validation loss of one recipe (another objective, norm, input set ...) is no yardstick for another's
            self.best_val, self.best_lesion_r = math.inf, -math.inf
            self._say("best.* from here on is the best of this stage: validations of two recipes are not compared")
        self.process_counts = [int(n) for n in meta.get("process_counts", [])] or [self.ctx.world_size]
        if self.process_counts[-1] != self.ctx.world_size:
            self._say(f"warning: the checkpoint was trained by {self.process_counts[-1]} process(es), this run has "
                      f"{self.ctx.world_size}: the global batch changes from "
                      f"{self.process_counts[-1] * self.config['batch_size']} to "
                      f"{self.ctx.world_size * self.config['batch_size']} slices a step")
            self.process_counts.append(self.ctx.world_size)
        self._say(f"resumed from step {self.step}")
        return True

    def _ema_network(self) -> torch.nn.Module:
        """A copy of the network holding the EMA weights, in eval mode, on the run's device."""
        from DCEDiffLib.diffusion.presets import build_network

        model = build_network(self.network_config).to(self.ctx.device)
        self.ema.copy_to(model)
        return model.eval()

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Loss of the EMA weights on fixed validation slices with fixed noise (comparable across steps)."""
        model = self._ema_network()
        generator = torch.Generator(device=self.ctx.device).manual_seed(4321)
        losses = []
        for start in range(0, len(self.val_cond), 8):
            cond = self.val_cond[start:start + 8].to(self.ctx.device)
            target = self.val_target[start:start + 8].to(self.ctx.device)
            losses.append(float(self._loss(model, cond, target, generator)) * len(cond))
        return sum(losses) / len(self.val_cond)

    @torch.no_grad()
    def lesion_validation(self) -> dict:
        """``{"lesion_r", "gland_r"}`` of the EMA weights on the validation lesion slices (lesion_validation.py)."""
        from DCEDiffLib.diffusion.objectives import predict_regression
        from DCEDiffLib.diffusion.residual import apply_parameterization, zero_enhancement
        from DCEDiffLib.target_scale import RANGE_FACTOR
        from DCEDiffLib.training.lesion_validation import score_regression_network

        model = self._ema_network()
        device = self.ctx.device

        def predict(cond: torch.Tensor) -> torch.Tensor:
            cond = cond.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = predict_regression(model, cond).float()
            return apply_parameterization(out, cond, self.config["parameterization"], self.conditions, RANGE_FACTOR)

        def zero(cond: torch.Tensor) -> torch.Tensor:
            return zero_enhancement(cond.to(device), self.conditions, RANGE_FACTOR, len(TARGET_MODALITIES))

        return score_regression_network(predict, self.lesion_slices, zero)

    def run(self, max_steps: Optional[int] = None, max_seconds: Optional[float] = None) -> dict:
        """Train until ``iterations`` (or ``max_steps`` more steps, or the first step that ends after ``max_seconds``
        of training, whichever comes first); returns a summary dict. A run stopped early ends as at ``iterations``:
        validated, checkpointed and exported, so it can be resumed or used as is (a lent GPU for a fixed time)."""
        from tqdm import tqdm

        config = self.config
        end = config["iterations"] if max_steps is None else min(config["iterations"], self.step + max_steps)
        planned_end = end
        self._write_static_files()
        self._seconds_before = 0.0
        log = self._open_log() if self.ctx.is_main else None
        bar = tqdm(total=config["iterations"], initial=self.step, disable=not self.show_progress,
                   desc="train", unit="step", dynamic_ncols=True)
        t_last, s_last = time.perf_counter(), self.step
        started = time.perf_counter()
        loss_sum, loss_n = 0.0, 0
        self.network.train()
        kind = "contrast" if self._needs_lesion_masks() else \
            "segmentation" if self.segmentation_head is not None else "weighted"
        loader = step_batches(self.batches, kind, self.step, end, config["loader_workers"])
        while self.step < end:
            seed = _step_seed(config["seed"], self.step, self.ctx.rank)
            torch.manual_seed(seed)  # dropout: reproducible per step, so resume is exact
            generator = torch.Generator(device=self.ctx.device).manual_seed(seed)
            cond, target, weights, masks, classes = next(loader)
            if masks is not None:
                masks = masks.to(self.ctx.device)
            if classes is not None:
                classes = classes.to(self.ctx.device)
            cond, target = cond.to(self.ctx.device), target.to(self.ctx.device)
            weights = weights.to(self.ctx.device) if self.config["region_weights"] else None
            lr = learning_rate(config, self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = self._loss(self.train_model, cond, target, generator, weights, masks)
            if classes is not None:  # the head scores the features of the forward pass just made
                with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    loss = loss + config["aux_segmentation_weight"] * self.segmentation_head.loss(classes)
            if not torch.isfinite(loss):
                raise RuntimeError(f"training diverged at step {self.step}: loss {float(loss)}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.segmentation_head is not None:
                self.ctx.average_gradients(self.segmentation_head.parameters())
            if config["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), config["grad_clip"])
            self.optimizer.step()
            self.ema.update(self.network)
            self.step += 1
            loss_sum += loss.item()
            loss_n += 1
            bar.update(1)
            if max_seconds is not None and self._out_of_time(started, max_seconds):
                end = self.step  # the checks below then validate, checkpoint and export as at the last step
            val_loss = None
            region_r = {}
            if self.step % config["validate_every"] == 0 or self.step == end:
                val_loss = self.validation_loss()
                if val_loss < self.best_val and self.ctx.is_main:
                    self.best_val = val_loss
                    self.export_model(self.out_dir / "best", {"validation_loss": val_loss})
                if self.lesion_slices is not None:
                    region_r = self.lesion_validation()
                    lesion_r = region_r["lesion_r"]
                    if lesion_r is not None and lesion_r > self.best_lesion_r and self.ctx.is_main:
                        self.best_lesion_r = lesion_r
                        self.export_model(self.out_dir / "best_lesion",
                                          {"validation_loss": val_loss, "validation_lesion_r": lesion_r,
                                           "validation_gland_r": region_r["gland_r"], "step": self.step})
            if self.ctx.is_main and (self.step % config["log_every"] == 0 or val_loss is not None
                                     or self.step == end):
                now = time.perf_counter()
                speed = (self.step - s_last) / max(now - t_last, 1e-9)
                t_last, s_last = now, self.step
                row = {"step": self.step, "loss": loss_sum / max(loss_n, 1), "lr": lr,
                       "val_loss": _blank_if_none(val_loss),
                       "val_lesion_r": _blank_if_none(region_r.get("lesion_r")),
                       "val_gland_r": _blank_if_none(region_r.get("gland_r")),
                       "seconds": round(self._seconds_before + now - started, 2),
                       "steps_per_second": round(speed, 3)}
                loss_sum, loss_n = 0.0, 0
                log.writerow(row)
                self._log_file.flush()
                self._tensorboard(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}",  # "-" until the first validation, not "inf"
                                val=f"{self.best_val:.4f}" if math.isfinite(self.best_val) else "-")
            if config["sample_image_every"] and self.step % config["sample_image_every"] == 0 and self.ctx.is_main:
                self.write_sample_image()
            if self.step % config["checkpoint_every"] == 0 or self.step == end:
                if self.ctx.is_main:
                    save_checkpoint(self._checkpoint_stem(), self.step, self.network, self.ema, self.optimizer,
                                    {"best_val": self.best_val, "best_lesion_r": self.best_lesion_r,
                                     "config": config, "process_counts": self.process_counts,
                                     "recipe_changes": self.recipe_changes}, self.companions)
                self.ctx.barrier()
        loader.close()  # a run stopped early (by time) leaves steps unbuilt: end the workers now
        bar.close()
        if log is not None:
            self._log_file.close()
        summary = {"steps": self.step, "stopped_by_time": self.step < planned_end,
                   "best_validation_loss": self.best_val if math.isfinite(self.best_val) else None,
                   "best_validation_lesion_r": self.best_lesion_r if math.isfinite(self.best_lesion_r) else None,
                   "seconds": round(time.perf_counter() - started, 1)}
        if self.ctx.is_main:
            self.export_model(self.out_dir / "model", {"validation_loss": self.validation_loss()})
            write_text_atomic(self.out_dir / "summary.json", json.dumps(summary, indent=2))
        return summary

    def _out_of_time(self, started: float, max_seconds: float) -> bool:
        """True once ``max_seconds`` have passed since ``started``; under DDP rank 0's clock decides for every rank,
        so that all of them stop at the same step."""
        over = time.perf_counter() - started >= max_seconds
        if not self.ctx.distributed:
            return over
        flag = torch.tensor([float(over)], device=self.ctx.device)
        torch.distributed.broadcast(flag, src=0)
        return bool(flag.item())

    # -- outputs -------------------------------------------------------------------------------------------
    def _write_static_files(self) -> None:
        if self.ctx.is_main:
            write_text_atomic(self.out_dir / "config.json", json.dumps(self.config, indent=2))

    def _open_log(self):
        path = self.out_dir / "log.csv"
        rows = []
        if path.is_file() and self.step > 0:  # drop rows beyond the resumed step, and any malformed one
            with open(path, encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    if None in row or None in row.values() or not str(row.get("step", "")).isdigit():
                        continue  # a row two writers merged, or cut short: its numbers cannot be trusted
                    if int(row["step"]) <= self.step:
                        rows.append(row)
        # "seconds" counts the whole run's training time across resumes: it goes on from the last row kept
        self._seconds_before = _float_or_zero(rows[-1].get("seconds")) if rows else 0.0
        # rewritten atomically (a crash here used to lose the rows kept), then appended to
        buffer = io.StringIO()
        kept = csv.DictWriter(buffer, LOG_FIELDS)
        kept.writeheader()
        kept.writerows({key: row.get(key, "") for key in LOG_FIELDS} for row in rows)
        write_text_atomic(path, buffer.getvalue())
        self._log_file = open(path, "a", newline="", encoding="utf-8")
        return csv.DictWriter(self._log_file, LOG_FIELDS)

    def _tensorboard(self, row: dict) -> None:
        if not self.config["tensorboard"]:
            return
        if self.tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(self.out_dir / "tensorboard"))
        for key in ("loss", "lr", "val_loss", "steps_per_second"):
            if row[key] != "":
                self.tensorboard.add_scalar(key, float(row[key]), row["step"])

    def model_card(self, metrics: dict) -> dict:
        """The JSON model card of the current weights."""
        from DCEDiffLib.training.model_card import make_model_card

        training = {
            "data": "see split.json in the run folder",
            "train_cases": len(self.data["train"]),
            "validation_cases": len(self.data["validation"]),
            "steps": self.step,
            # DDP: the processes of each segment of the run (resumed with another count: several) and the slices
            # one step averages over now
            "processes": list(self.process_counts),
            "global_batch_size": int(self.config["batch_size"]) * self.ctx.world_size,
            "recipe_changes": list(self.recipe_changes),  # resumed with --change-recipe: at which step, what
            "recipe": {k: self.config[k] for k in ("batch_size", "crop_size", "lr", "lr_schedule", "warmup_steps",
                                                   "ema_decay", "grad_clip", "flip_left_right", "objective", "without",
                                                   "parameterization", "region_weights", "augment",
                                                   "lesion_slice_share", "lesion_contrast_weight",
                                                   "lesion_correlation_weight", "lesion_correlation_region",
                                                   "lesion_ring_px", "context_slices", "aux_segmentation_weight",
                                                   "regression_norm", "absolute_adc", "t1pre_clip_consistent")},
        }
        residual = None
        if self.mean_model is not None:
            mean_card = self.mean_model.card
            residual = {"mean_network": {"preset": mean_card["architecture"].get("preset", ""),
                                         "config": mean_card["architecture"]["config"],
                                         "parameterization": mean_card.get("parameterization", "image"),
                                         "training": mean_card.get("training", {}),
                                         "metrics": mean_card.get("metrics", {})},
                        "residual_scale": self.residual_scale}
            if self.context_slices:
                residual["mean_network"]["context_slices"] = self.context_slices
            if self.absolute_adc:
                residual["mean_network"]["absolute_adc"] = True
        card = make_model_card(self.network_config, objective=self.config["objective"],
                               conditions=self.conditions, preset=self.config["model"].get("preset", "paper"),
                               training=training, metrics=metrics,
                               parameterization=self.config["parameterization"], residual=residual,
                               optional_inputs=self.optional_inputs(),
                               context_slices=self.context_slices if self.config["objective"] == "regression" else 0,
                               absolute_adc=self.absolute_adc and self.config["objective"] == "regression")
        if self.initial_sampling:
            card["sampling"] = dict(self.initial_sampling)
        if self._t1pre_clip_consistent():
            from DCEDiffLib.intensity_tail import CARD_FIELD

            card[CARD_FIELD] = True
        return card

    def _t1pre_clip_consistent(self) -> bool:
        """Whether the targets lie over the clipped T1-pre: the config's ``t1pre_clip_consistent``, or a residual
        run's mean network trained so (the residual must not learn back the excess its mean left out)."""
        from DCEDiffLib.intensity_tail import adds_excess_back

        return bool(self.config["t1pre_clip_consistent"]) or (self.mean_model is not None
                                                             and adds_excess_back(self.mean_model.card))

    def _t1pre_clip_factor(self):
        """The targets' range factor when the targets lie over the clipped T1-pre, else None."""
        from DCEDiffLib.target_scale import RANGE_FACTOR

        return RANGE_FACTOR if self._t1pre_clip_consistent() else None

    def optional_inputs(self) -> list:
        """The card's ``optional_inputs``: PD when this run drops it (``augment.drop_pd`` > 0) and, for a residual
        run, the frozen mean network was trained so too (else only a warning: the mean never saw a missing PD)."""
        from DCEDiffLib.training.model_card import optional_inputs_of_training

        augment = self.config.get("augment") or {}
        mean_card = self.mean_model.card if self.mean_model is not None else None
        optional = optional_inputs_of_training(augment, self.conditions, mean_card)
        if mean_card is not None:
            for modality in sorted(set(optional_inputs_of_training(augment, self.conditions)) - set(optional)):
                if not getattr(self, "_warned_optional", False):
                    self._say(f"warning: augment.drop_{modality} > 0, but the mean model was not trained without "
                              f"{modality} (its card has no optional_inputs); the exported model requires {modality}")
                    self._warned_optional = True
        return optional

    def export_model(self, stem: Path, metrics: dict) -> None:
        """Save the EMA weights as a model (safetensors + card)."""
        from DCEDiffLib.diffusion.model_files import save_model
        from DCEDiffLib.diffusion.presets import build_network

        model = build_network(self.network_config)
        self.ema.copy_to(model)
        if self.mean_model is not None:  # one file holds the frozen mean network and the residual network
            from DCEDiffLib.diffusion.residual import ResidualDiffusionModel

            card = self.model_card(metrics)
            combined = ResidualDiffusionModel(card["mean_network"]["config"], self.network_config, self.conditions,
                                              card["normalization"]["target_range_factor"], self.residual_scale,
                                              card["mean_network"]["parameterization"])
            combined.mean_network.load_state_dict(self.mean_model.network.state_dict())
            combined.mean_context_slices = self.context_slices
            combined.mean_absolute_adc = self.absolute_adc
            combined.residual_network.load_state_dict(model.state_dict())
            save_model(combined, card, stem.with_suffix(".safetensors"))
            return
        save_model(model, self.model_card(metrics), stem.with_suffix(".safetensors"))

    @torch.no_grad()
    def write_sample_image(self) -> Path:
        """PNG of validation slices: T2W, acquired early/late, EMA-model samples (DPM-Solver++, few steps)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from DCEDiffLib.diffusion.presets import build_network
        from DCEDiffLib.diffusion.samplers import sample
        from DCEDiffLib.diffusion.objectives import predict_regression

        model = build_network(self.network_config).to(self.ctx.device)
        self.ema.copy_to(model)
        model.eval()
        cond = self.val_cond[:2].to(self.ctx.device)
        if self.config["objective"] == "regression":
            from DCEDiffLib.diffusion.residual import apply_parameterization
            from DCEDiffLib.target_scale import RANGE_FACTOR

            synthetic = apply_parameterization(predict_regression(model, cond), cond, self.config["parameterization"],
                                               self.conditions, RANGE_FACTOR)
        elif self.config["objective"] == "residual":
            mean = self._mean_of(cond)
            own = cond[:, :len(self.conditions)]
            residual = sample(lambda y, g: model(torch.cat([own, mean, y], 1), g), (len(cond), 2) + cond.shape[2:],
                              sampler="dpmpp", steps=self.config["sample_steps"], seed=0, device=self.ctx.device)
            synthetic = (mean + self.residual_scale * residual).clamp(-1, 1)
        else:
            synthetic = sample(lambda y, g: model(torch.cat([cond, y], 1), g), (len(cond), 2) + cond.shape[2:],
                               sampler="dpmpp", steps=self.config["sample_steps"], seed=0,
                               device=self.ctx.device)
        fig, axes = plt.subplots(len(cond), 5, figsize=(12, 2.6 * len(cond)), squeeze=False)
        for row in range(len(cond)):
            panels = [(cond[row, 0], "T2W"), (self.val_target[row, 0], "acquired early"),
                      (synthetic[row, 0], "synthetic early"), (self.val_target[row, 1], "acquired late"),
                      (synthetic[row, 1], "synthetic late")]
            for ax, (image, title) in zip(axes[row], panels):
                ax.imshow(image.float().cpu().numpy(), cmap="gray", vmin=-1, vmax=1)
                ax.set_title(title, fontsize=9)
                ax.axis("off")
        fig.suptitle(f"step {self.step} — SYNTHETIC images are model output", fontsize=10)
        path = self.out_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path

    def close(self) -> None:
        """Release the process group."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        distributed.teardown(self.ctx)
