"""Per-step metrics to CSV (always) and TensorBoard (optional), rank 0 only. The CSV takes
whatever keys it is given: its header is the union of all keys seen (rewritten when a new key
appears, e.g. sampler statistics that start after the clusters are initialised)."""

from __future__ import annotations

import csv
from pathlib import Path

from cmcgns.io.atomic import atomic_open

LEADING = ["step", "stage", "lr", "loss"]


class MetricsLog:
    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.fields: list[str] = []
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                self.fields = next(csv.reader(handle), [])
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run logs those steps again: no step appears twice)."""
        if self.path.is_file() and self.fields:
            self._rewrite(self.fields, keep=lambda row: int(row.get("step") or 0) <= step)

    def _rewrite(self, fields: list[str], keep=None) -> None:
        rows = []
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                rows = [row for row in csv.DictReader(handle) if keep is None or keep(row)]
        with atomic_open(self.path, "w", newline="", encoding="utf-8") as handle:  # a kill keeps the old file
            writer = csv.DictWriter(handle, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        self.fields = fields

    def log(self, step: int, values: dict[str, float | str]) -> None:
        row = {"step": step, **values}
        new = [k for k in row if k not in self.fields]
        if new or not self.path.is_file():
            ordered = [k for k in LEADING if k in row or k in self.fields]
            self._rewrite(ordered + [k for k in self.fields + new if k not in ordered])
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=self.fields, restval="").writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
