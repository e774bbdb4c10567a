"""How a training step runs on this hardware: device, precision, data-loader settings, DDP
wrapping and CUDA fast paths. No side effects at import; each helper says what it chose."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

import torch

from cmcgns import distributed as ddp
from cmcgns.errors import ConfigError

log = logging.getLogger("cmcgns")
MAX_WORKERS_PER_GPU = 8


def select_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' (train.device or --device) was asked for, but no CUDA device is available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def resolve_precision(device: torch.device, precision: str) -> str:
    """`auto`: bf16 autocast on CUDA devices that support it, else fp32 (CPU bf16 autocast is
    usually slower than fp32 without AMX: 4x on this project's 2-core CI machines)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and device.type == "cpu":
        log.warning(
            "train.precision=bf16 on a CPU: bf16 autocast is often much slower than fp32 there; "
            "precision=auto uses fp32 on CPUs"
        )
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("train.precision=fp16 needs a CUDA device; use auto, fp32 or bf16 on a CPU")
    return precision


def autocast_for(device: torch.device, precision: str):
    if precision in ("fp32", "auto"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def enable_fast_paths(device: torch.device) -> None:
    """TF32 matmuls and convolutions on CUDA (bf16/fp32 training); a no-op on CPUs."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def loader_workers(choice: int | str, device: torch.device) -> int:
    """`auto`: the CPUs available to this process divided among the local ranks, at most
    MAX_WORKERS_PER_GPU, when training on CUDA; 0 (decode in the training process) on a CPU,
    where workers would compete with the step for the same cores."""
    if choice != "auto":
        return int(choice)
    if device.type != "cuda":
        return 0
    cpus = available_cpus()
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_WORKERS_PER_GPU, cpus // local_ranks - 1))


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def torch_threads(choice: int | str, workers: int) -> int:
    """`auto`: this process's share of the CPUs it may run on (affinity, divided among the local
    ranks of torchrun) less one per loader worker, at least 1. torch's own default is every
    physical core per process, which oversubscribes the machine under torchrun or with loader
    workers (each spins on every core)."""
    if choice != "auto":
        return int(choice)
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, available_cpus() // max(1, local_ranks) - workers)


def busy_machine_hint(threads: int) -> str | None:
    """A line to print when other processes already keep the CPUs busy (1-minute load average):
    there, fewer threads than cores ran faster (benchmarks/cpu_threads.py: 2x with 1 thread
    instead of 2 beside one busy process on 2 cores). Not applied automatically: the thread count
    would then depend on the load of the moment."""
    if threads <= 1 or not hasattr(os, "getloadavg"):
        return None
    load = os.getloadavg()[0]
    cpus = available_cpus()
    if load < 0.75 * cpus:
        return None
    return (
        f"the machine is busy (load {load:.1f} on {cpus} CPUs) and this run uses {threads} threads; "
        f"if steps are slow, try --set train.threads=1 (see benchmarks/cpu_threads.py)"
    )


def loader_options(workers: int, device: torch.device) -> dict[str, Any]:
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options


def build_optimizer_kwargs(device: torch.device) -> dict[str, Any]:
    """Fused Adam/AdamW kernels on CUDA."""
    return {"fused": True} if device.type == "cuda" else {}


def wrap_ddp(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP with a static graph (no find_unused_parameters): the set of used parameters is fixed
    within a stage (static_graph records it on the first iteration), and the wrapper is rebuilt
    when a stage starts, since the reconstruction head is used in some stages only."""
    if not ddp.is_distributed():
        return module
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False, static_graph=True)


def channels_last(module: torch.nn.Module, device: torch.device, is_cnn: bool) -> None:
    """channels_last memory format for CNN backbones on CUDA (faster convolutions); a no-op otherwise."""
    if device.type == "cuda" and is_cnn:
        module.to(memory_format=torch.channels_last)


def library_versions() -> dict[str, str]:
    import platform

    from cmcgns.versions import package_versions

    names = ("cmcgns", "torch", "torchvision", "timm", "transformers", "numpy", "faiss-cpu", "safetensors")
    return {"python": platform.python_version(), **package_versions(names)}


def run_record(started: float, first_step: int, threads: int, workers: int) -> dict[str, Any]:
    """When and with what this invocation ran (a resumed run records the invocation that finished
    it; `resumed_from_step` says where it started)."""
    import datetime

    ended = time.time()
    iso = lambda t: datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="seconds")  # noqa: E731
    return {
        "started": iso(started),
        "ended": iso(ended),
        "wall_seconds": round(ended - started, 3),
        "resumed_from_step": first_step,
        "torch_threads": threads,
        "loader_workers": workers,
        "cpus_available": available_cpus(),
        "world_size": ddp.world_size(),
        "versions": library_versions(),
    }
