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

import collections
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
    """The trainer's own optimisation step (cmcgns.training.step.train_step) on one batch."""
    from cmcgns.training.step import StepSettings, train_step

    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")
    loss, _ = train_step(
        task, task.parameters, lambda: batch, step, reconstruction, optimizer, scaler, StepSettings(device, precision)
    )
    return loss


def loader_rate(config, manifest: Path, batch: int, workers: int, batches: int, device: torch.device) -> float:
    """Images/s of the trainer's loader settings (pinned memory on CUDA, persistent workers, prefetch),
    the real PairDataset decode + augmentation + collate, copied to the device; worker start-up is not counted."""
    from torch.utils.data import DataLoader

    from cmcgns.data.pretrain_dataset import PairDataset
    from cmcgns.training.pretrain import build_collator
    from cmcgns.training.runtime import loader_options

    ds = PairDataset(manifest, "train", config.data.image_size, train=True)
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        collate_fn=build_collator(config),
        drop_last=True,
        **loader_options(workers, device),
    )
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not counted
    t, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            images = next(it)["images"]
        except StopIteration:
            it = iter(loader)
            images = next(it)["images"]
        images.to(device, non_blocking=True)
        n += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def profile_step(task, optimizer, batch, reconstruction, device, precision, rows: int = 25) -> None:
    """One stage II step under torch.profiler: the top device-time operators (self time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as prof:
        run_step(task, optimizer, batch, 10_000, reconstruction, device, precision)
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60))


def measured_matmul_peak(device: torch.device, size: int = 8192, repeats: int = 10) -> float:
    """bf16 dense matrix-product TFLOP/s measured on this device (random data, after warm-up)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e12


def main() -> None:
    ap = scale_arguments(precision="auto")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak of the device for MFU (auto for known GPUs)")
    ap.add_argument("--workers", default="0,1,2", help="loader worker counts to measure")
    ap.add_argument("--loader-batches", type=int, default=8)
    ap.add_argument(
        "--variants",
        default="clip,stage II",
        help="comma-separated: clip, stage I, stage II (clip and stage II are needed)",
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoders, as train.compile does")
    ap.add_argument("--profile", action="store_true", help="print the stage II step's most expensive device kernels")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    from torch.utils.flop_counter import FlopCounterMode

    from cmcgns.training.runtime import resolve_precision, select_device

    device = select_device(args.device)
    precision = resolve_precision(device, args.precision)
    tmp = Path(tempfile.mkdtemp())
    try:
        names = tuple(n.strip() for n in args.variants.split(","))
        studies = args.batch * (args.loader_batches + 2)
        manifest, configs, batch, tasks, optimizers = setup_variants(
            tmp, args, device, precision, names, studies=studies
        )
        if args.compile:
            for task in tasks.values():
                task.model.image_encoder.compile()
                task.model.text_encoder.compile()
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
        syncs, sync_sites = 0, collections.Counter()
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
                        sync_sites = collections.Counter(
                            f"{Path(w.filename).name}:{w.lineno} {str(w.message).splitlines()[0][:60]}"
                            for w in caught
                            if "called a synchronizing" in str(w.message)
                        )
                        syncs = sum(sync_sites.values())
                    continue
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                run_step(task, optimizers[name], batch, step, configs[name][1], device, precision)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if step > 1:
                    seconds[name].append(time.perf_counter() - t)
        if args.profile:
            profile_step(tasks["stage II"], optimizers["stage II"], batch, configs["stage II"][1], device, precision)
        peak = (
            torch.cuda.max_memory_allocated() / 2**30
            if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        )
        loader = {
            w: loader_rate(configs["stage II"][0], manifest, args.batch, w, args.loader_batches, device)
            for w in [int(x) for x in args.workers.split(",")]
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak_tflops = args.peak_tflops
    measured_peak = measured_matmul_peak(device) if device.type == "cuda" else None
    if peak_tflops is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak_tflops = next((v for k, v in KNOWN_PEAKS.items() if k in name), None)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {label}; {precision}; {args.image} @{args.image_size}px + BERT-base, batch {args.batch}, "
        f"{float(batch['attention_mask'].sum(1).float().mean()):.0f} tokens per report"
        + (", encoders compiled" if args.compile else "")
    )
    if measured_peak:
        print(
            f"measured bf16 8192^3 matrix product: {measured_peak:.0f} TFLOP/s; MFU below is against "
            f"{peak_tflops} TFLOP/s (datasheet dense bf16)"
        )
    record = {
        "device": label,
        "precision": precision,
        "image": args.image,
        "batch": args.batch,
        "compiled": args.compile,
        "measured_matmul_tflops": measured_peak,
        "peak_tflops": peak_tflops,
        "variants": {},
    }
    for name in tasks:
        med = statistics.median(seconds[name])
        pairs = args.batch / med
        achieved = flops[name] / med / 1e12
        mfu = f"{100 * achieved / peak_tflops:.1f} %" if peak_tflops else "n/a (give --peak-tflops)"
        record["variants"][name] = {
            "median_s": med,
            "min_s": min(seconds[name]),
            "max_s": max(seconds[name]),
            "pairs_per_s": pairs,
            "gflop_per_pair": flops[name] / args.batch / 1e9,
            "tflops": achieved,
            "mfu": achieved / peak_tflops if peak_tflops else None,
        }
        print(
            f"{name:9s} {med:7.3f} s/step (min {min(seconds[name]):.3f}, max {max(seconds[name]):.3f})  {pairs:8.1f} pairs/s  "
            f"{flops[name] / args.batch / 1e9:8.1f} GFLOP/pair  {achieved:7.2f} TFLOP/s  MFU {mfu}"
        )
    ratio = statistics.median(seconds["stage II"]) / statistics.median(seconds["clip"])
    print(f"full CM-CGNS step (stage II) / plain CLIP step: {ratio:.2f}x")
    print(
        f"host reads in one non-logging stage II step: {sum(reads.values())} {reads or ''}"
        + (
            f"; CUDA synchronisations reported: {syncs}"
            if device.type == "cuda"
            else "; CUDA sync debug mode: n/a on CPU"
        )
    )
    for site, n in sync_sites.most_common():
        print(f"  sync x{n} at {site}")
    consumption = args.batch / statistics.median(seconds["stage II"])
    for w, rate in loader.items():
        per_worker = f", {rate / w:.1f} per worker" if w else " (main process)"
        print(
            f"loader, {w} worker(s): {rate:8.1f} images/s{per_worker}  ({rate / consumption:5.2f}x the stage II step's "
            f"{consumption:.1f} pairs/s)"
        )
    print(f"peak memory {peak:.2f} GiB ({'CUDA allocator' if device.type == 'cuda' else 'process RSS'})")
    record.update(
        ratio_stage2_over_clip=ratio,
        host_reads=reads,
        cuda_syncs=syncs if device.type == "cuda" else None,
        cuda_sync_sites=dict(sync_sites),
        loader_images_per_s=loader,
        step_pairs_per_s=consumption,
        peak_memory_gib=peak,
    )
    if args.json:
        import json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
