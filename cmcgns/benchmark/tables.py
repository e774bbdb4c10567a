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


def _reference_cell(s: dict, reference: dict | None) -> str:
    value = reference.get((s["task"], float(s["fraction"]), s["metric"])) if reference else None
    return f"{value:.4f}" if value is not None else "—"


def markdown_table(summary: list[dict], reference: dict | None = None) -> str:
    """`reference` maps (task, fraction, metric) to a published value (None = not available)."""
    header = "| task | fraction | metric | mean ± std | n |" + (" reference |" if reference is not None else "")
    lines = [header, "|---|---|---|---|---|" + ("---|" if reference is not None else "")]
    for s in summary:
        row = f"| {s['task']} | {s['fraction']:g} | {s['metric']} | {s['mean']:.4f} ± {s['std']:.4f} | {s['n']} |"
        lines.append(row + (f" {_reference_cell(s, reference)} |" if reference is not None else ""))
    return "\n".join(lines) + "\n"


def write_tables(summary: list[dict], out_dir: Path, reference: dict | None = None) -> dict[str, Path]:
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.md", markdown_table(summary, reference))
    fields = ["task", "fraction", "metric", "mean", "std", "n"] + (["reference"] if reference is not None else [])
    rows = [
        dict(s, reference=reference.get((s["task"], float(s["fraction"]), s["metric"]))) if reference is not None else s
        for s in summary
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
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
