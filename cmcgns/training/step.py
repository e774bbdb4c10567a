"""One optimisation step: micro-batches through the task (forward + named losses), backward with
gradient accumulation, optional clipping, optimiser and scaler update. The trainer and the
throughput benchmarks call this same function."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from collections.abc import Callable, Iterable
from typing import cast

import torch
from torch.nn.parallel import DistributedDataParallel

from cmcgns.objectives.cmcgns import total_loss
from cmcgns.training.runtime import autocast_for

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StepSettings:
    device: torch.device
    precision: str
    seed: int = 0
    rank: int = 0
    distributed: bool = False
    grad_accum: int = 1
    grad_clip: float = 0.0


def micro_step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The host generator of one micro-step (CM-MIR masks): a function of the position only, so a resumed
    run draws the same masks."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + micro * 7 + rank)


def train_step(
    task: torch.nn.Module,
    parameters: Callable[[], Iterable[torch.nn.Parameter]],
    next_batch: Callable[[], Batch],
    step: int,
    reconstruction: bool,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    settings: StepSettings,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns the last micro-batch's total loss and named losses, as device tensors (no host read)."""
    losses: dict[str, torch.Tensor] = {}
    loss = torch.zeros(())
    for micro in range(settings.grad_accum):
        batch = {k: v.to(settings.device, non_blocking=True) for k, v in next_batch().items()}
        generator = micro_step_generator(settings.seed, step, micro, settings.rank)
        sync = micro == settings.grad_accum - 1 or not settings.distributed
        with (
            contextlib.nullcontext() if sync else cast(DistributedDataParallel, task).no_sync(),
            autocast_for(settings.device, settings.precision),
        ):
            losses = task(batch, step, reconstruction, generator)
            loss = total_loss(losses)
        scaler.scale(loss / settings.grad_accum).backward()
    if settings.grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(parameters()), settings.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss, losses
