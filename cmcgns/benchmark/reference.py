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
import yaml

from cmcgns.errors import ConfigError


class ReferenceEntry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    task: str
    fraction: float = pydantic.Field(gt=0, le=1)
    metric: str
    value: float | None = pydantic.Field(None, ge=0, le=1)


class ReferenceTable(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    source: str
    entries: list[ReferenceEntry]

    def lookup(self) -> dict[tuple[str, float, str], float | None]:
        return {(e.task, float(e.fraction), e.metric): e.value for e in self.entries}


def load_reference(path: Path) -> ReferenceTable:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read reference table ({exc})") from None
    try:
        return ReferenceTable.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, err['loc'])) or 'table'}: {err['msg']}") from None
