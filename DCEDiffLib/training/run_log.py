"""What a training run records as it goes: ``config.json``, ``log.csv`` (a resumed run keeps its rows up to the
step it resumes from) and the TensorBoard scalars.

A mixin of ``Trainer`` (trainer.py): its methods read the trainer's own attributes (``config``, ``ctx``,
``network`` ...).
"""

from __future__ import annotations

import csv
import io
import json
from DCEDiffLib.atomic import write_text_atomic

LOG_FIELDS = ["step", "loss", "lr", "val_loss", "val_lesion_r", "val_gland_r", "seconds", "steps_per_second"]


def _float_or_zero(value) -> float:
    """A log.csv cell as a number (an old or hand-edited log may have it blank)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class RunLog:
    """The run folder's config and log files (mixin of ``Trainer``)."""

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
