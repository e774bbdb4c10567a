"""Per-step metrics to CSV (always) and TensorBoard (optional), rank 0 only."""

from __future__ import annotations

import csv
from pathlib import Path


FIELDS = ["step", "stage", "lr", "loss", "global", "token", "sentence", "reconstruction",
          "sampler/false_negative_rate", "sampler/hard_negative_rate", "sampler/cluster_entropy", "seconds"]


class MetricsLog:
    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = Path(run_dir) / "metrics.csv"
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, step: int, values: dict[str, float | str]) -> None:
        row = {"step": step, **values}
        exists = self.path.is_file()
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore", restval="")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
