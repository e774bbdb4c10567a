"""Regression gate: compare aggregated metrics with an expected-values YAML file.

Format (a list):
    - {task: rsna-cls, fraction: 1.0, metric: auroc, value: 0.80, tolerance: 0.10}
    - {task: siim-seg, fraction: 1.0, metric: dice, min: 0.05}
`value`/`tolerance` fails outside [value - tolerance, value + tolerance]; `min`/`max` are bounds.
    - {task: covidx-cls, fraction: 1.0, metric: auroc, beats: random-init, margin: 0.03}
`beats: random-init` compares with the same suite run on a randomly initialised backbone (same
tasks, fractions, seeds; `cmcgns benchmark` runs it when a backbone is given): the backbone's mean
must exceed the baseline's by `margin`. A broken method (e.g. shuffled report pairing) fails it.
    - {task: rsna-det, fraction: 1.0, metric: map_40_75, beats: untrained-head, margin: 0.05}
`beats: untrained-head` compares with the same task scored before its head is trained (same
backbone, splits and seeds; the task option `untrained: true`): a head that stopped learning fails.
`better: lower` makes a `beats` entry ask for a value lower than the baseline's by `margin`
(losses).
"""

from __future__ import annotations

import math
from typing import Literal
from pathlib import Path

import pydantic

from cmcgns.config.loading import load_yaml_model, read_yaml_file
from cmcgns.config.schema import Strict
from cmcgns.errors import ConfigError


class Expectation(Strict):
    task: str
    fraction: float
    metric: str
    value: float | None = None
    tolerance: float = pydantic.Field(0.0, ge=0)
    min: float | None = None
    max: float | None = None
    beats: Literal["random-init", "untrained-head"] | None = None
    margin: float = pydantic.Field(0.0, description="with beats: the smallest accepted lead over the baseline's mean")
    better: Literal["higher", "lower"] = pydantic.Field("higher", description="with beats: which direction leads")

    @pydantic.model_validator(mode="after")
    def _bounds(self) -> Expectation:
        if self.value is None and self.min is None and self.max is None and self.beats is None:
            raise ValueError("give value (+ tolerance), min/max, or beats (+ margin)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def bounds(self) -> tuple[float, float]:
        lo = self.value - self.tolerance if self.value is not None else -math.inf
        hi = self.value + self.tolerance if self.value is not None else math.inf
        return max(lo, self.min if self.min is not None else -math.inf), min(
            hi, self.max if self.max is not None else math.inf
        )


class ExpectedValues(pydantic.RootModel[list[Expectation]]):
    pass


def load_expected(path: Path) -> list[Expectation]:
    if not isinstance(read_yaml_file(path, "expected values"), list):
        raise ConfigError(f"{path}: expected a YAML list of {{task, fraction, metric, value|min|max}} entries")
    return load_yaml_model(path, ExpectedValues, "expected values").root


def check_tasks_exist(expected: list[Expectation], path: Path, known: list[str]) -> None:
    """A task name the registry does not know is a typo that would switch the gate off: refuse it."""
    unknown = sorted({e.task for e in expected} - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown task(s) {', '.join(unknown)}; registered: {', '.join(sorted(known))}")


def needs_baseline(expected: list[Expectation], kind: str = "random-init") -> list[str]:
    """The tasks that `beats: KIND` entries judge (empty: no such baseline needed)."""
    return sorted({e.task for e in expected if e.beats == kind})


def check(
    summary: list[dict],
    expected: list[Expectation],
    baselines: dict[str, list[dict]] | None = None,
    planned: set[tuple[str, float]] | None = None,
) -> list[str]:
    """Failures as messages; a metric missing from a task/fraction that ran is a failure too, and so
    is a `planned` (task, fraction) with no row at all (every run of it failed).
    `baselines` maps a baseline name (random-init, untrained-head) to the summary of the same suite
    run that way (for `beats` entries)."""
    index = {(s["task"], float(s["fraction"]), s["metric"]): s for s in summary}
    bases = {
        name: {(s["task"], float(s["fraction"]), s["metric"]): s for s in rows}
        for name, rows in (baselines or {}).items()
    }
    failures = []
    for e in expected:
        key = (e.task, float(e.fraction), e.metric)
        got = index.get(key)
        if got is None:
            if any(s["task"] == e.task and float(s["fraction"]) == float(e.fraction) for s in summary):
                failures.append(f"{e.task} @{e.fraction:g} {e.metric}: expected but not measured")
            elif planned and (e.task, float(e.fraction)) in planned:
                failures.append(f"{e.task} @{e.fraction:g} {e.metric}: expected, but no run of it recorded a row")
            continue  # tasks/fractions outside this run's selection are not judged
        if e.value is not None or e.min is not None or e.max is not None:
            lo, hi = e.bounds()
            if math.isnan(got["mean"]) or not lo <= got["mean"] <= hi:
                failures.append(f"{e.task} @{e.fraction:g} {e.metric}: {got['mean']:.4f} outside [{lo:.4f}, {hi:.4f}]")
        if e.beats is not None:
            reference = bases.get(e.beats, {}).get(key)
            if reference is None:
                hint = " (give --backbone)" if e.beats == "random-init" else ""
                failures.append(f"{e.task} @{e.fraction:g} {e.metric}: no {e.beats} baseline to compare with{hint}")
                continue
            lead = got["mean"] - reference["mean"] if e.better == "higher" else reference["mean"] - got["mean"]
            if math.isnan(lead) or lead < e.margin:
                failures.append(
                    f"{e.task} @{e.fraction:g} {e.metric}: {got['mean']:.4f} leads {e.beats} ({reference['mean']:.4f}) "
                    f"by {lead:+.4f}{' (lower is better)' if e.better == 'lower' else ''}, "
                    f"less than the required {e.margin:.4f}"
                )
    return failures
