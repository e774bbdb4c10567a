"""Runs an mmengine Runner from a config dict and returns its test metrics."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import warnings
from pathlib import Path
from typing import Any

COMPONENTS_MODULE = "cmcgns.downstream.mm.components"
_RUN_NUMBERS = itertools.count()


def allow_mmengine_checkpoint_globals() -> None:
    """mmengine 0.10.7 checkpoints carry a few non-tensor objects (its HistoryBuffer, numpy
    arrays/dtypes in the message hub). Allow exactly those for torch.load(weights_only=True)
    instead of disabling the check."""
    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    safe = [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar]
    safe += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    torch.serialization.add_safe_globals(safe)


def run_mm(cfg_dict: dict[str, Any], work_dir: Path, device: str = "cpu", train: bool = True) -> dict[str, float]:
    """Train and test on `device` (cpu, cuda or cuda:N); OpenMMLab's own output (its deprecation
    warnings, per-iteration logs and full COCO tables) goes to WORK_DIR/mm.log, not the console.

    Launched by torchrun (WORLD_SIZE > 1), every rank calls this: the process group is initialised
    here (gloo on CPUs, NCCL on GPUs), mmengine shards the loaders and wraps the model in DDP, and
    every rank returns the same metrics (mmengine's evaluator broadcasts them). Rank r > 0 logs to
    WORK_DIR/mm.rank<r>.log. `train=False` tests the model as initialised (backbone weights loaded,
    head untrained)."""
    from mmengine.config import Config

    from cmcgns import distributed
    from cmcgns.downstream.mm.components import BestValidationState, DeviceRunner, check_neck_matches_backbone
    from cmcgns.io.host_memory import map_large_blocks

    allow_mmengine_checkpoint_globals()
    map_large_blocks()  # image batches mapped and unmapped, not kept by the heap (cmcgns.io.host_memory)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    launched = distributed.init_from_env(backend)
    # mmengine names its logger, message hub and visualizer after the experiment, by default the
    # second the Runner started: two runs started within one second (an untrained-head baseline
    # takes less) would share the first run's logger, whose stream is that run's closed mm.log.
    check_neck_matches_backbone(cfg_dict.get("model", {}))
    cfg_dict = dict(cfg_dict, work_dir=str(work_dir), experiment_name=f"cmcgns-{os.getpid()}-{next(_RUN_NUMBERS)}")
    if launched:
        cfg_dict["launcher"] = "pytorch"
        cfg_dict["env_cfg"] = dict(cfg_dict.get("env_cfg", {}), dist_cfg=dict(backend=backend))
    log_name = "mm.log" if distributed.is_main() else f"mm.rank{distributed.rank()}.log"
    with (
        open(work_dir / log_name, "a", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("default")
        logging.captureWarnings(True)
        try:
            runner = DeviceRunner.on(device).from_cfg(Config(cfg_dict))
            for handler in runner.logger.handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    handler.setStream(log)
            if train:
                runner.train()  # under an epoch schedule this ends on the best-validation state (BestValidationState)
            else:
                from mmengine.model import is_model_wrapper

                (runner.model.module if is_model_wrapper(runner.model) else runner.model).init_weights()
            metrics = runner.test()
        finally:
            logging.captureWarnings(False)
            _release_logger(cfg_dict["experiment_name"])
    out = {k: float(v) for k, v in metrics.items()}
    best = [hook for hook in runner.hooks if isinstance(hook, BestValidationState)]
    if best and train:
        out["selected_epoch"] = float(best[0].epoch)
        out["trained_epochs"] = float(runner.epoch)
    return out


def _release_logger(experiment_name: str) -> None:
    """Close the handlers of the run's MMLogger (its file handler would stay open for the life of
    the process) and forget the instance, so no later code logs through a stream this run closed."""
    from mmengine.logging import MMLogger

    for name in [n for n in MMLogger._instance_dict if n.startswith(f"{experiment_name}_")]:  # NAME_<timestamp>
        logger = MMLogger._instance_dict.pop(name)
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
