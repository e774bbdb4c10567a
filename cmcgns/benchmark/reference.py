"""Published reference values (e.g. the paper's table) shown beside a run's results.

File format (YAML):
    source: "Lan et al. 2025, arXiv:2506.11674, Table 2"
    entries:
      - {task: rsna-cls, fraction: 0.01, metric: auroc, value: null}   # null = not transcribed
Values are fractions (0.885, not 88.5), matching what our tasks report.
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from cmcgns.config.loading import load_yaml_model
from cmcgns.config.schema import Strict


class ReferenceEntry(Strict):
    task: str
    fraction: float = pydantic.Field(gt=0, le=1)
    metric: str
    value: float | None = pydantic.Field(None, ge=0, le=1)


class ReferenceTable(Strict):
    source: str
    entries: list[ReferenceEntry]

    def lookup(self) -> dict[tuple[str, float, str], float | None]:
        return {(e.task, float(e.fraction), e.metric): e.value for e in self.entries}


def load_reference(path: Path) -> ReferenceTable:
    return load_yaml_model(path, ReferenceTable, "reference table")
