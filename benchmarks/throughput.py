"""Pretraining throughput of a config on this device: what a GPU would be fed and how well it is used.

    python benchmarks/throughput.py [--image deit_base_patch16_224] [--batch 4] [--steps 3] [--tokens 110]
                                    [--precision auto] [--device auto] [--peak-tflops X] [--workers 0,1,2]

On the paper setting (cm-cgns-vit-b16 with a BERT-base-sized random text encoder, see common.py),
measured in one run:
- pairs/s of the full CM-CGNS step (stage II) and of a plain CLIP step with the same encoders
  (interleaved, medians), and their ratio;
- FLOPs per pair counted by torch's FlopCounterMode (forward + backward), and MFU against
  --peak-tflops (or the bf16 dense peak of a recognised GPU);
- host reads per step outside logging steps: calls of Tensor.item/__bool__/__float__/__int__/tolist
  during a step, and on CUDA the synchronisations reported by torch.cuda.set_sync_debug_mode;
- loader images/s for each worker count (the real PairDataset + collate) against the step's
  consumption (pairs/s);
- peak memory (CUDA allocator, or process RSS).
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import scale_arguments, setup_variants  # noqa: E402

# bf16 dense tensor-core peaks (TFLOP/s) of GPUs we recognise by name
KNOWN_PEAKS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


@contextlib.contextmanager
def count_host_reads():
    """Counts Python-level reads of tensor values (each is a device sync on CUDA)."""
    counts: dict[str, int] = {}
    names = ["item", "__bool__", "__float__", "__int__", "tolist"]
    originals = {n: getattr(torch.Tensor, n) for n in names}

    def wrap(name):
        original = originals[name]

        def counted(self, *a, **k):
            counts[name] = counts.get(name, 0) + 1
            return original(self, *a, **k)
        return counted

    for n in names:
        setattr(torch.Tensor, n, wrap(n))
    try:
        yield counts
    finally:
        for n, f in originals.items():
            setattr(torch.Tensor, n, f)


def run_step(task, optimizer, batch, step, reconstruction, device, precision):
    from cmcgns.objectives.cmcgns import total_loss
    from cmcgns.training.runtime import autocast_for

    with autocast_for(device, precision):
        loss = total_loss(task(batch, step, reconstruction, torch.Generator().manual_seed(step)))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def loader_rate(config, manifest: Path, batch: int, workers: int, batches: int) -> float:
    from torch.utils.data import DataLoader

    from cmcgns.data.pretrain_dataset import PairDataset
    from cmcgns.training.pretrain import build_collator

    ds = PairDataset(manifest, "train", config.data.image_size, train=True)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, collate_fn=build_collator(config), num_workers=workers,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None, drop_last=True)
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not counted
    t, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            n += len(next(it)["images"])
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = scale_arguments(precision="auto")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak of the device for MFU (auto for known GPUs)")
    ap.add_argument("--workers", default="0,1,2", help="loader worker counts to measure")
    ap.add_argument("--loader-batches", type=int, default=8)
    args = ap.parse_args()
    from torch.utils.flop_counter import FlopCounterMode

    from cmcgns.training.runtime import resolve_precision, select_device

    device = select_device(args.device)
    precision = resolve_precision(device, args.precision)
    tmp = Path(tempfile.mkdtemp())
    try:
        manifest, configs, batch, tasks, optimizers = setup_variants(tmp, args, device, precision, ("clip", "stage II"))
        # FLOPs per step (forward + backward), counted once per variant
        flops = {}
        for name, task in tasks.items():
            counter = FlopCounterMode(display=False)
            with counter:
                run_step(task, optimizers[name], batch, 0, configs[name][1], device, precision)
            flops[name] = counter.get_total_flops()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds: dict[str, list[float]] = {name: [] for name in tasks}
        reads: dict[str, int] = {}
        syncs = 0
        # round 0 warms up; round 1 instruments one non-logging stage II step; the rest are timed
        for step in range(0, args.steps + 2):
            for name, task in tasks.items():
                if step == 1:
                    if name == "stage II":
                        with count_host_reads() as counts, warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always")
                            if device.type == "cuda":
                                torch.cuda.set_sync_debug_mode("warn")
                            run_step(task, optimizers[name], batch, step, configs[name][1], device, precision)
                            if device.type == "cuda":
                                torch.cuda.set_sync_debug_mode(0)
                        reads = dict(counts)
                        syncs = sum("synchroniz" in str(w.message) for w in caught)
                    continue
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                run_step(task, optimizers[name], batch, step, configs[name][1], device, precision)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if step > 1:
                    seconds[name].append(time.perf_counter() - t)
        peak = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        loader = {w: loader_rate(configs["stage II"][0], manifest, args.batch, w, args.loader_batches)
                  for w in [int(x) for x in args.workers.split(",")]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak_tflops = args.peak_tflops
    if peak_tflops is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak_tflops = next((v for k, v in KNOWN_PEAKS.items() if k in name), None)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {label}; {precision}; {args.image} @{args.image_size}px + BERT-base, batch {args.batch}, "
          f"{float(batch['attention_mask'].sum(1).float().mean()):.0f} tokens per report")
    for name in tasks:
        med = statistics.median(seconds[name])
        pairs = args.batch / med
        achieved = flops[name] / med / 1e12
        mfu = f"{100 * achieved / peak_tflops:.1f} %" if peak_tflops else "n/a (give --peak-tflops)"
        print(f"{name:9s} {med:7.3f} s/step (min {min(seconds[name]):.3f}, max {max(seconds[name]):.3f})  {pairs:8.1f} pairs/s  "
              f"{flops[name] / args.batch / 1e9:8.1f} GFLOP/pair  {achieved:7.2f} TFLOP/s  MFU {mfu}")
    ratio = statistics.median(seconds["stage II"]) / statistics.median(seconds["clip"])
    print(f"full CM-CGNS step (stage II) / plain CLIP step: {ratio:.2f}x")
    print(f"host reads in one non-logging stage II step: {sum(reads.values())} {reads or ''}"
          + (f"; CUDA synchronisations reported: {syncs}" if device.type == "cuda" else "; CUDA sync debug mode: n/a on CPU"))
    consumption = args.batch / statistics.median(seconds["stage II"])
    for w, rate in loader.items():
        print(f"loader, {w} worker(s): {rate:8.1f} images/s  ({rate / consumption:5.2f}x the stage II step's {consumption:.1f} pairs/s)")
    print(f"peak memory {peak:.2f} GiB ({'CUDA allocator' if device.type == 'cuda' else 'process RSS'})")


if __name__ == "__main__":
    main()
