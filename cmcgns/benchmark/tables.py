"""mean ± std tables (Markdown, CSV) and a bar plot from benchmark result rows."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from cmcgns.errors import DataError
from cmcgns.io.atomic import write_bytes, write_text

SKIP = {"train_rows", "test_rows", "foreground_weight"}  # run diagnostics kept in results.jsonl, not tabulated


def read_results(path: Path) -> list[dict]:
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc})") from None
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, float, str], list[float]] = {}
    for r in rows:
        for metric, value in r["metrics"].items():
            if metric not in SKIP:
                groups.setdefault((r["task"], float(r["fraction"]), metric), []).append(float(value))
    out = []
    for (task, fraction, metric), values in sorted(groups.items()):
        finite = [v for v in values if not math.isnan(v)]
        mean = sum(finite) / len(finite) if finite else float("nan")
        std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else 0.0
        out.append({"task": task, "fraction": fraction, "metric": metric, "mean": mean, "std": std, "n": len(values)})
    return out


def markdown_table(summary: list[dict]) -> str:
    lines = ["| task | fraction | metric | mean ± std | n |", "|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['task']} | {s['fraction']:g} | {s['metric']} | {s['mean']:.4f} ± {s['std']:.4f} | {s['n']} |")
    return "\n".join(lines) + "\n"


def write_tables(summary: list[dict], out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.md", markdown_table(summary))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["task", "fraction", "metric", "mean", "std", "n"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary)
    write_text(out_dir / "summary.csv", buffer.getvalue())
    plot = out_dir / "summary.png"
    _plot(summary, plot)
    return {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv", "plot": plot}


def _plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s['task']}\n{s['metric']} @{s['fraction']:g}" for s in summary]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(labels)), 3.5))
    ax.bar(range(len(summary)), [s["mean"] for s in summary], yerr=[s["std"] for s in summary], capsize=3)
    ax.set_xticks(range(len(summary)), labels, fontsize=7)
    ax.set_ylabel("mean ± std over seeds")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
