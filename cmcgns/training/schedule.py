"""Stage plan (stage lengths in steps, optimiser segments) and the warm-up + cosine lr factor."""

from __future__ import annotations

import dataclasses
import math

from cmcgns.config.schema import PretrainConfig, Stage


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.01, start: float = 0.0) -> float:
    """lr factor: linear from `start` to 1 over `warmup` steps, then cosine down to `floor` at `total`."""
    if warmup and step < warmup:
        return start + (1 - start) * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclasses.dataclass(frozen=True)
class StagePlan:
    stages: list[Stage]
    stage_steps: list[int]
    segments: list[tuple[int, int]]  # [start, end) of each optimiser (a stage with reset_optimizer starts one)
    warmup: int

    @classmethod
    def from_config(cls, config: PretrainConfig, steps_per_epoch: int) -> StagePlan:
        lengths = config.stage_steps(steps_per_epoch)
        segments: list[tuple[int, int]] = []
        position = 0
        for i, (stage, length) in enumerate(zip(config.stages, lengths)):
            if i == 0 or stage.reset_optimizer:
                segments.append((position, position + length))
            else:
                segments[-1] = (segments[-1][0], position + length)
            position += length
        return cls(list(config.stages), lengths, segments, config.warmup_steps(steps_per_epoch))

    @property
    def total(self) -> int:
        return sum(self.stage_steps)

    def stage_at(self, step: int) -> Stage:
        boundary = 0
        for stage, length in zip(self.stages, self.stage_steps):
            boundary += length
            if step < boundary:
                return stage
        return self.stages[-1]

    def segment_at(self, step: int) -> int:
        for i, (_, end) in enumerate(self.segments):
            if step < end:
                return i
        return len(self.segments) - 1
