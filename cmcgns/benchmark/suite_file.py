"""A benchmark suite as a YAML file: which tasks, fractions, seeds and task options to run, and
(optionally) the expected-values file that gates it. Relative paths are resolved against the
suite file's folder, so `benchmarks/ci_suite.yaml` works from any working directory.

    tasks: [covidx-cls, rsna-det]
    fractions: [0.1, 1.0]
    seeds: [0, 1]
    synthetic_studies: 48
    options: {rsna-det: {iters: 4, image_size: 32}}
    expected: ci_expected.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic

from cmcgns.config.loading import load_yaml_model, read_yaml_file
from cmcgns.config.schema import Strict
from cmcgns.errors import ConfigError


class SuiteFile(Strict):
    tasks: list[str] = pydantic.Field(min_length=1)
    fractions: list[float] = [1.0]
    seeds: list[pydantic.NonNegativeInt] = [0]
    protocol: Literal["mgca", "fast"] = pydantic.Field(
        "mgca",
        description="downstream protocol for tasks that offer one (classification): mgca (published) or fast (CI)",
    )
    synthetic: bool = pydantic.Field(False, description="use generated data for datasets the data root lacks")
    synthetic_studies: int = pydantic.Field(120, ge=8)
    options: dict[str, dict[str, Any]] = {}
    expected: Path | None = None

    @pydantic.field_validator("fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < f <= 1 for f in value):
            raise ValueError("fractions must be in (0, 1]")
        return value

    @pydantic.model_validator(mode="after")
    def _options_name_tasks(self) -> SuiteFile:
        unknown = set(self.options) - set(self.tasks)
        if unknown:
            raise ValueError(f"options given for task(s) not in tasks: {', '.join(sorted(unknown))}")
        return self

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
    return suite
