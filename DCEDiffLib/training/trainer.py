"""The training loop (paper Algorithm 1): Adam, linear warm-up, EMA, gradient clipping, checkpoints, resume, DDP.

Run by ``dcediff train`` (one process) or ``torchrun --nproc_per_node=G -m DCEDiffLib.cli train`` (DDP).
Outputs in the run folder: ``split.json``, ``config.json``, ``log.csv``, ``checkpoints/last.*`` (resume),
``model.safetensors|json`` (EMA weights at the end) and ``best.safetensors|json`` (lowest validation loss),
``best_lesion.safetensors|json`` (highest validation lesion r, with ``lesion_validation``; lesion_validation.py),
``samples/step_XXXXXX.png``, and ``tensorboard/`` when enabled.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from DCEDiffLib.atomic import write_text_atomic
from DCEDiffLib.diffusion.absolute_adc import reads_absolute_adc
from DCEDiffLib.diffusion.model_files import mean_context_slices
from DCEDiffLib.errors import InputError
from DCEDiffLib.extras import extra_available, require_extra
from DCEDiffLib.modalities import TARGET_MODALITIES
from DCEDiffLib.training import distributed
from DCEDiffLib.training.batches import SliceBatches, fixed_slices
from DCEDiffLib.training.case_loading import load_split_cases
from DCEDiffLib.training.checkpoint import load_checkpoint, save_checkpoint
from DCEDiffLib.training.config import condition_modalities
from DCEDiffLib.training.ema import EMA
from DCEDiffLib.training.ema_validation import EMAValidation
from DCEDiffLib.training.emulated_bf16 import emulated_bf16_warning
from DCEDiffLib.training.initial_weights import InitialWeights
from DCEDiffLib.training.lr_schedule import learning_rate
from DCEDiffLib.training.model_export import ModelExport
from DCEDiffLib.training.run_log import RunLog
from DCEDiffLib.training.sample_image import SampleImage
from DCEDiffLib.training.step_loader import step_batches
from DCEDiffLib.training.training_loss import TrainingLoss


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 7]).integers(0, 2**62))


def _blank_if_none(value: Optional[float]):
    return "" if value is None else value


# The methods of one concern each live in a mixin of their own module (initial_weights, training_loss,
# ema_validation, run_log, model_export, sample_image); this class sets up the run and holds the loop.
class Trainer(InitialWeights, TrainingLoss, EMAValidation, RunLog, ModelExport, SampleImage):
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
        if self._needs_lesion_masks() or "urine" in config["region_weights"]:
            require_extra("lesion_masks")  # their masks are dilated and eroded with scipy
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
            if config["sample_image_every"] and self.step % config["sample_image_every"] == 0 and self.ctx.is_main \
                    and extra_available("sample_image"):  # without matplotlib: skipped, said once (extras.py)
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

    def close(self) -> None:
        """Release the process group."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        distributed.teardown(self.ctx)
