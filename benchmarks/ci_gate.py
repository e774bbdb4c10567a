"""The CI regression gate end to end, and its negative control: pretrain the backbone the CI suite
names (benchmarks/ci_pretrain.yaml), run the suite (benchmarks/ci_suite.yaml) with its gate
(ci_expected.yaml), and report the verdict. `--pairing shuffled` breaks the method on purpose
(every image trained with another study's report): the gate must then fail.

    python benchmarks/ci_gate.py --out /tmp/ci-gate [--pairing paired,shuffled] [--seed 0]

Prints, per pairing, the gate's verdict, its failure lines and the wall time; exits 0 when every
paired run passes and every shuffled run fails (the gate separates the method from the control).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent


def cmcgns(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmcgns", *args], capture_output=True, text=True, check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pairing", default="paired,shuffled")
    ap.add_argument("--seed", type=int, default=0, help="pretraining seed (train.seed)")
    args = ap.parse_args()
    expected_outcome = {"paired": 0, "shuffled": 1}
    separated = True
    for pairing in args.pairing.split(","):
        start = time.perf_counter()
        run = args.out / f"{pairing}-seed{args.seed}"
        pre = cmcgns(
            "pretrain",
            "-c",
            str(BENCHMARKS / "ci_pretrain.yaml"),
            "--set",
            f"run_dir={run / 'pretrain'}",
            "--set",
            f"data.pairing={pairing}",
            "--set",
            f"train.seed={args.seed}",
            "--overwrite",
        )
        if pre.returncode:
            raise SystemExit(f"pretraining failed:\n{pre.stderr[-3000:]}")
        bench = cmcgns(
            "benchmark",
            "--suite",
            str(BENCHMARKS / "ci_suite.yaml"),
            "--backbone",
            str(run / "pretrain" / "export"),
            "--data-root",
            str(args.out / "data"),
            "--out",
            str(run / "benchmark"),
        )
        if bench.returncode not in (0, 1):
            raise SystemExit(f"benchmark failed:\n{bench.stderr[-3000:]}")
        failures = [line for line in bench.stdout.splitlines() if "REGRESSION" in line]
        verdict = "PASS" if bench.returncode == 0 else "FAIL"
        print(f"{pairing} (pretraining seed {args.seed}): gate {verdict} in {time.perf_counter() - start:.0f} s")
        for line in failures:
            print("  " + line.strip())
        print((run / "benchmark" / "summary.md").read_text())
        summary = json.loads((run / "pretrain" / "summary.json").read_text())
        print(f"  trainer's held-out probe at 1 %: {summary['eval'].get('linear_probe_auc_1pct')}")
        separated &= bench.returncode == expected_outcome.get(pairing, bench.returncode)
    raise SystemExit(0 if separated else 1)


if __name__ == "__main__":
    main()
