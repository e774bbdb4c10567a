"""torch's intra-op threads on a CPU: the demo's pretraining steps with `train.threads` 1, 2, ...
and `auto`, measured side by side in one run (rounds alternate between the settings, so a change
in the machine's load hits every setting alike). `--busy N` starts N spinning processes for the
whole measurement: a machine shared with other jobs (CI beside a working tree, a second run).

    python benchmarks/cpu_threads.py --steps 20 --rounds 2 --busy 0
    python benchmarks/cpu_threads.py --steps 20 --rounds 2 --busy 1

Prints pairs/s per setting (the mean of the rounds, steps after the first logged one), the ratio to
`auto`, and the losses at the last step (identical settings must train identically).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _spin() -> None:
    while True:
        pass


def _run(threads: str, steps: int, run_dir: Path, manifest: Path) -> tuple[float, float]:
    cmd = [
        sys.executable, "-m", "cmcgns", "pretrain", "-c", "demo", "--no-progress", "--overwrite",
        "--set", f"run_dir={run_dir}", "--set", f"data.manifest={manifest}", "--set", f"train.threads={threads}", "--set", "train.evaluate=false",
        "--set", "train.tensorboard=false", "--set", "train.log_every=1", "--set", f"stages=[{{name: align, steps: {steps}}}]",
        "--set", f"train.checkpoint_every={steps}",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    first, last = rows[1], rows[-1]  # the first step pays for warm-up
    seconds = float(last["seconds"]) - float(first["seconds"])
    steps_timed = int(last["step"]) - int(first["step"])
    batch = 24  # the demo's train.batch_size
    return batch * steps_timed / seconds, float(last["loss"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2,auto", help="settings of train.threads to compare")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy", type=int, default=0, help="spinning processes beside the measurement")
    args = ap.parse_args()
    settings = args.threads.split(",")
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    rates: dict[str, list[float]] = {s: [] for s in settings}
    losses: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            from cmcgns.data.bootstrap import ensure_synthetic_mimic

            manifest = ensure_synthetic_mimic(Path(tmp) / "data", 320, 0, 128, 64)  # the demo's data
            for round_ in range(args.rounds):
                for setting in settings if round_ % 2 == 0 else reversed(settings):
                    rate, loss = _run(setting, args.steps, Path(tmp) / f"run-{setting}", manifest)
                    rates[setting].append(rate)
                    losses[setting] = loss
    finally:
        for p in spinners:
            p.terminate()
    reference = statistics.mean(rates["auto"]) if "auto" in rates else None
    print(f"demo pretraining, {args.steps} steps x {args.rounds} rounds, {args.busy} busy process(es) beside it")
    print(f"{'threads':>8} {'pairs/s':>9} {'vs auto':>8} {'loss':>8}")
    for setting in settings:
        mean = statistics.mean(rates[setting])
        ratio = f"{mean / reference:.2f}x" if reference else "-"
        print(f"{setting:>8} {mean:9.2f} {ratio:>8} {losses[setting]:8.4f}")


if __name__ == "__main__":
    main()
