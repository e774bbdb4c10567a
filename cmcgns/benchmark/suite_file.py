"""A benchmark suite as a YAML file: which tasks, fractions, seeds and task options to run, and
(optionally) the expected-values file that gates it. Relative paths are resolved against the
suite file's folder, so `benchmarks/ci_suite.yaml` works from any working directory.

    tasks: [covidx-cls, rsna-det]
    fractions: [0.1, 1.0]
    task_fractions: {covidx-cls: [0.01]}   # per-task fractions, overriding `fractions`
    seeds: [0, 1]
    pretrain: ci_pretrain.yaml   # the pretraining config the expected values were set for
    synthetic_studies: 48
    options: {rsna-det: {iters: 4, image_size: 32}}
    expected: ci_expected.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from cmcgns.config.loading import load_yaml_model, read_yaml_file
from cmcgns.config.schema import Strict
from cmcgns.errors import ConfigError


class SuiteFile(Strict):
    tasks: list[str] = pydantic.Field(min_length=1)
    fractions: list[float] = pydantic.Field([0.01, 0.1, 1.0], description="label fractions (MGCA: 1, 10 and 100 %)")
    task_fractions: dict[str, list[float]] = pydantic.Field(
        {}, description="per-task label fractions, overriding `fractions` for those tasks"
    )
    seeds: list[pydantic.NonNegativeInt] = pydantic.Field(
        [0, 1, 2], min_length=1, description="downstream seeds (3 by default: mean ± std)"
    )
    pretrain: Path | None = pydantic.Field(
        None, description="pretraining config (relative to the suite file) whose export the expected values assume"
    )
    protocol: Literal["mgca", "fast"] = pydantic.Field(
        "mgca",
        description="downstream protocol for tasks that offer one (classification): mgca (published) or fast (CI)",
    )
    synthetic: bool = pydantic.Field(False, description="use generated data for datasets the data root lacks")
    synthetic_studies: Annotated[int, pydantic.Field(ge=8)] | dict[str, Annotated[int, pydantic.Field(ge=8)]] = (
        pydantic.Field(
            120,
            description="studies per generated dataset, or per dataset name with a `default` "
            "(e.g. {default: 240, chexpert: 2000})",
        )
    )
    options: dict[str, dict[str, Any]] = {}
    expected: Path | None = None

    @pydantic.field_validator("fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < f <= 1 for f in value):
            raise ValueError("fractions must be in (0, 1]")
        return value

    @pydantic.field_validator("seeds", "tasks", "fractions")
    @classmethod
    def _unique(cls, value: list | None) -> list | None:
        repeated = sorted({str(v) for v in value or [] if list(value or []).count(v) > 1})
        if repeated:
            raise ValueError(
                f"{', '.join(repeated)} given more than once (a repeated run would count twice in mean ± std)"
            )
        return value

    @pydantic.field_validator("task_fractions")
    @classmethod
    def _task_fractions(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for task, fractions in value.items():
            if not fractions or any(not 0 < f <= 1 for f in fractions):
                raise ValueError(f"{task}: fractions must be a non-empty list of values in (0, 1]")
        return value

    @pydantic.model_validator(mode="after")
    def _options_name_tasks(self) -> SuiteFile:
        for field in ("options", "task_fractions"):
            unknown = set(getattr(self, field)) - set(self.tasks)
            if unknown:
                raise ValueError(f"{field} given for task(s) not in tasks: {', '.join(sorted(unknown))}")
        return self

    @pydantic.field_validator("synthetic_studies")
    @classmethod
    def _studies(cls, value):
        if isinstance(value, dict) and "default" not in value:
            raise ValueError("a per-dataset mapping needs a `default` entry, e.g. {default: 240, chexpert: 2000}")
        return value

    def fractions_for(self, task: str) -> list[float]:
        return self.task_fractions.get(task, self.fractions)

    def with_overrides(
        self,
        *,
        tasks: list[str] | None = None,
        fractions: list[float] | None = None,
        seeds: list[int] | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        expected: Path | None = None,
        synthetic_studies: int | None = None,
        synthetic: bool | None = None,
        protocol: str | None = None,
    ) -> SuiteFile:
        """Command-line values over the file's: given lists replace, options merge per task (options of
        tasks the new selection drops are dropped with them)."""
        chosen = tasks or self.tasks
        merged = {name: dict(opts) for name, opts in self.options.items() if name in chosen}
        for name, opts in (options or {}).items():
            merged.setdefault(name, {}).update(opts)
        data = self.model_dump()
        data.update(
            tasks=chosen,
            options=merged,
            fractions=fractions or self.fractions,
            # --fractions on the command line applies to every task
            task_fractions={} if fractions else {k: v for k, v in self.task_fractions.items() if k in chosen},
            seeds=seeds or self.seeds,
            expected=expected or self.expected,
            synthetic=self.synthetic if synthetic is None else synthetic,
            protocol=protocol or self.protocol,
            synthetic_studies=synthetic_studies or self.synthetic_studies,
        )
        try:
            return SuiteFile.model_validate(data)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(
                f"--tasks/--fractions/--seeds/--set: {'.'.join(map(str, err['loc'])) or 'suite'}: {err['msg']}"
            ) from None


def load_suite(path: Path) -> SuiteFile:
    path = Path(path)
    if not isinstance(read_yaml_file(path, "suite file"), dict):
        raise ConfigError(f"{path}: a suite file is a YAML mapping with tasks/fractions/seeds/options/expected")
    suite = load_yaml_model(path, SuiteFile, "suite file")
    if suite.expected is not None and not suite.expected.is_absolute():
        suite.expected = path.parent / suite.expected
    if suite.pretrain is not None and not suite.pretrain.is_absolute():
        suite.pretrain = path.parent / suite.pretrain
    return suite
