"""Published reference values (e.g. the paper's table) shown beside a run's results.

File format (YAML):
    source: "Lan et al. 2025, arXiv:2506.11674, Table 2"
    entries:
      - {task: rsna-cls, fraction: 0.01, metric: auroc, value: null}   # null = not transcribed
      - {task: rsna-det, fraction: 0.01, metric: map_40_75_mgca, value: null, protocol: mgca}
Values are fractions (0.885, not 88.5), matching what our tasks report. `protocol` (default mgca)
is the protocol the value was measured under: a row of ours under another protocol shows the
value with that said in the cell. Detection values must be entered as `map_40_75_mgca`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic

from cmcgns.config.loading import load_yaml_model
from cmcgns.config.schema import Strict


# detection numbers in the MGCA / CM-CGNS tables are MGCA's computation (cmcgns.downstream.metrics)
PUBLISHED_DETECTION_METRIC = "map_40_75_mgca"
OUR_DETECTION_METRICS = ("map_40_75", "map", "map50")


class ReferenceValue(float):
    """A published value that remembers the protocol it was measured under."""

    protocol: str

    def __new__(cls, value: float, protocol: str) -> ReferenceValue:
        made = super().__new__(cls, value)
        made.protocol = protocol
        return made


class ReferenceEntry(Strict):
    task: str
    fraction: float = pydantic.Field(gt=0, le=1)
    metric: str
    value: float | None = pydantic.Field(None, ge=0, le=1)
    protocol: Literal["mgca", "fast"] = pydantic.Field(
        "mgca", description="the downstream protocol the published value was measured under"
    )

    @pydantic.model_validator(mode="after")
    def _published_detection_metric(self) -> ReferenceEntry:
        if self.task.endswith("-det") and self.metric in OUR_DETECTION_METRICS:
            raise ValueError(
                f"{self.task} {self.metric}: published detection values (MGCA, CM-CGNS) are MGCA's computation, "
                f"which skips images; enter them as metric {PUBLISHED_DETECTION_METRIC} so they sit beside that number"
            )
        return self


class ReferenceTable(Strict):
    source: str
    entries: list[ReferenceEntry]

    def lookup(self) -> dict[tuple[str, float, str], ReferenceValue | None]:
        return {
            (e.task, float(e.fraction), e.metric): None if e.value is None else ReferenceValue(e.value, e.protocol)
            for e in self.entries
        }


def load_reference(path: Path) -> ReferenceTable:
    return load_yaml_model(path, ReferenceTable, "reference table")
