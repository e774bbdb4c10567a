"""mean ± std tables (Markdown, CSV) and a bar plot from benchmark result rows."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from cmcgns.errors import DataError
from cmcgns.io.columns import align_columns
from cmcgns.io.atomic import write_bytes, write_text

# run diagnostics kept in results.jsonl, not tabulated
SKIP = {
    "train_rows",
    "val_rows",
    "test_rows",
    "foreground_weight",
    "selected_epoch",
    "trained_epochs",
    "image_size",
    "batch_size",
    "subset_ids_missing",
    "candidates",
    "per_class",
    "prompts",
    "positives",
}


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
    """mean ± std over seeds per task x fraction x metric; `ci` is the mean over seeds of each run's
    95 % bootstrap interval over test images (when the task reports one)."""
    groups: dict[tuple[str, float, str], list[float]] = {}
    intervals: dict[tuple[str, float, str], list[tuple[float, float]]] = {}
    protocols: dict[tuple[str, float], set[str]] = {}
    for r in rows:
        if r.get("status", "ok") != "ok":  # a failed run is recorded with its error, not tabulated
            continue
        protocols.setdefault((r["task"], float(r["fraction"])), set()).add(str(r.get("protocol", "fast")))
        for metric, value in r["metrics"].items():
            if metric.endswith(("_ci_low", "_ci_high")):
                continue
            if metric not in SKIP:
                key = (r["task"], float(r["fraction"]), metric)
                groups.setdefault(key, []).append(float("nan") if value is None else float(value))
                low, high = r["metrics"].get(f"{metric}_ci_low"), r["metrics"].get(f"{metric}_ci_high")
                if low is not None and high is not None:
                    intervals.setdefault(key, []).append((float(low), float(high)))
    out = []
    for (task, fraction, metric), values in sorted(groups.items()):
        finite = [v for v in values if math.isfinite(v)]  # NaN/inf (written as null) are no score
        mean = sum(finite) / len(finite) if finite else float("nan")
        std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else 0.0
        entry = {"task": task, "fraction": fraction, "metric": metric, "mean": mean, "std": std, "n": len(finite)}
        if len(finite) < len(values):
            entry["no_value"] = len(values) - len(finite)  # runs whose score was NaN or infinite
        entry["protocol"] = ", ".join(sorted(protocols.get((task, fraction), set())))
        ci = intervals.get((task, fraction, metric))
        if ci and len(ci) == len(values):
            entry["ci"] = (sum(c[0] for c in ci) / len(ci), sum(c[1] for c in ci) / len(ci))
        out.append(entry)
    return out


def result_line(row: dict) -> str:
    """One finished run on one line: task, fraction, seed and its scores at 4 decimals (bookkeeping
    such as row counts and bootstrap bounds stays in results.jsonl)."""
    scores = [
        f"{metric} {'no value' if value is None else f'{float(value):.4f}'}"
        for metric, value in row["metrics"].items()
        if metric not in SKIP and not metric.endswith(("_ci_low", "_ci_high"))
    ]
    return f"{row['task']} f={row['fraction']:g} seed {row['seed']}: " + "  ".join(scores)


def n_cell(s: dict) -> str:
    """The runs a mean is over, and how many more gave no value (NaN/inf)."""
    return f"{s['n']} ({s['no_value']} no value)" if s.get("no_value") else str(s["n"])


def aligned_table(summary: list[dict]) -> str:
    """mean ± std per task x fraction x metric as plain aligned columns, for the console."""
    header = ["task", "fraction", "metric", "mean ± std", "95 % CI", "n"]
    body = [
        [
            s["task"],
            f"{s['fraction']:g}",
            s["metric"],
            f"{s['mean']:.4f} ± {s['std']:.4f}",
            f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]" if s.get("ci") else "-",
            n_cell(s),
        ]
        for s in summary
    ]
    return "\n".join(align_columns([header, *body]))


def _reference_cell(s: dict, reference: dict | None) -> str:
    value = reference.get((s["task"], float(s["fraction"]), s["metric"])) if reference else None
    if value is None:
        return "—"
    published, ours = getattr(value, "protocol", None), s.get("protocol")
    if published and ours and published != ours:  # never in the same column without saying so
        return f"{value:.4f} (measured under {published}; this row: {ours})"
    return f"{value:.4f}"


def markdown_table(
    summary: list[dict], reference: dict | None = None, note: str = "", baseline: list[dict] | None = None
) -> str:
    """`reference` maps (task, fraction, metric) to a published value (None = not available); `note`
    is printed above the table (e.g. that the data are synthetic); `baseline` (the same suite on a
    random-init backbone) adds a column beside each result."""
    base = {(b["task"], float(b["fraction"]), b["metric"]): b for b in baseline or []}
    columns = ["task", "fraction", "metric", "mean ± std", "95 % CI (test bootstrap)", "n"]
    columns += ["random init (same splits, seeds)"] if baseline is not None else []
    columns += ["reference"] if reference is not None else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in summary:
        ci = f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]" if s.get("ci") else "—"
        cells = [s["task"], f"{s['fraction']:g}", s["metric"], f"{s['mean']:.4f} ± {s['std']:.4f}", ci, n_cell(s)]
        if baseline is not None:
            b = base.get((s["task"], float(s["fraction"]), s["metric"]))
            cells.append(f"{b['mean']:.4f} ± {b['std']:.4f}" if b else "—")
        if reference is not None:
            cells.append(_reference_cell(s, reference))
        lines.append("| " + " | ".join(cells) + " |")
    return (f"{note}\n\n" if note else "") + "\n".join(lines) + "\n"


def write_tables(
    summary: list[dict],
    out_dir: Path,
    reference: dict | None = None,
    bounds: dict[tuple[str, float, str], tuple[float, float]] | None = None,
    title: str = "",
    note: str = "",
    baseline: list[dict] | None = None,
) -> dict[str, Path]:
    out_dir = Path(out_dir)
    write_text(out_dir / "summary.md", markdown_table(summary, reference, note, baseline))
    fields = ["task", "fraction", "metric", "mean", "std", "n", "no_value", "ci_low", "ci_high", "protocol"]
    fields += ["reference"] if reference is not None else []
    rows = []
    for entry in summary:
        row = {k: v for k, v in entry.items() if k != "ci"}
        row.setdefault("protocol", "")
        row.setdefault("no_value", 0)
        row["ci_low"], row["ci_high"] = entry["ci"] if entry.get("ci") else ("", "")
        if reference is not None:
            row["reference"] = reference.get((entry["task"], float(entry["fraction"]), entry["metric"]))
        rows.append(row)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out_dir / "summary.csv", buffer.getvalue())
    plot = out_dir / "summary.png"
    plot_summary(summary, plot, reference, bounds, title, baseline)
    return {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv", "plot": plot}


# metrics bounded to [0, 1]: their spread is clipped to that range in the plot
UNIT_METRICS = {"auroc", "acc", "map", "map50", "dice", "ap", "f1"}


def plot_summary(
    summary: list[dict],
    path: Path,
    reference: dict | None = None,
    bounds: dict[tuple[str, float, str], tuple[float, float]] | None = None,
    title: str = "",
    baseline: list[dict] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = summary_figure(summary, reference, bounds, title, baseline)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def summary_figure(
    summary: list[dict],
    reference: dict | None = None,
    bounds: dict[tuple[str, float, str], tuple[float, float]] | None = None,
    title: str = "",
    baseline: list[dict] | None = None,
):
    """One panel per task: each metric against the label fraction (log axis), mean with the seed
    spread (± std, clipped to [0, 1] for bounded metrics), the random-init baseline (same splits and
    seeds) dashed in the same colour, published reference values as crosses and the regression
    gate's bounds as a shaded band; the figure title names the backbone. Bounded metrics (AUROC,
    Dice, mAP...) share the left axis on [0, 1]; any other (a loss) gets its own right-hand axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({s["task"] for s in summary})
    cols = min(3, max(1, len(tasks)))
    rows_n = max(1, math.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    base = {(b["task"], float(b["fraction"]), b["metric"]): b for b in baseline or []}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes.flat, tasks):
        entries = [s for s in summary if s["task"] == task]
        metrics = sorted({s["metric"] for s in entries})
        unbounded = [m for m in metrics if m not in UNIT_METRICS]
        other = ax.twinx() if unbounded and len(unbounded) < len(metrics) else None
        for number, metric in enumerate(metrics):
            target = other if (other is not None and metric in unbounded) else ax
            colour = colours[number % len(colours)]
            points = sorted((s for s in entries if s["metric"] == metric), key=lambda s: s["fraction"])
            xs = [s["fraction"] for s in points]
            _plot_points(target, points, metric, colour, f"{metric} ± std (n={points[0]['n']})", "-")
            random_init = [base[(task, x, metric)] for x in xs if (task, x, metric) in base]
            if random_init:
                _plot_points(target, random_init, metric, colour, f"{metric} random init", "--")
            ref = [(x, (reference or {}).get((task, x, metric))) for x in xs]
            ref = [(x, v) for x, v in ref if v is not None]
            if ref:
                target.scatter(*zip(*ref), marker="x", color=colour, zorder=3, label=f"{metric} reference")
            for x in xs:
                band = (bounds or {}).get((task, x, metric))
                if band:
                    low, high = (max(band[0], -1e9), min(band[1], 1e9))
                    target.plot(
                        [x, x],
                        [low if math.isfinite(low) else 0.0, high if math.isfinite(high) else 1.0],
                        color=colour,
                        linewidth=6,
                        alpha=0.15,
                        solid_capstyle="butt",
                    )
        ax.set_xscale("log")
        fractions = sorted({s["fraction"] for s in entries})
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.set_xlabel("label fraction")
        ax.set_title(task, fontsize=10)
        if len(unbounded) < len(metrics):
            ax.set_ylim(0.0, 1.0)
            ax.set_ylabel(", ".join(m for m in metrics if m in UNIT_METRICS), fontsize=8)
        if other is not None:
            other.set_ylabel(", ".join(unbounded), fontsize=8)
        handles = [h for a in (ax, other) if a is not None for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles=handles, fontsize=7)
    fig.suptitle(title or "cmcgns benchmark", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_points(ax, points: list[dict], metric: str, colour: str, label: str, style: str) -> None:
    xs = [s["fraction"] for s in points]
    means = [s["mean"] for s in points]
    lo = [s["mean"] - s["std"] for s in points]
    hi = [s["mean"] + s["std"] for s in points]
    if metric in UNIT_METRICS:
        lo, hi = [max(0.0, v) for v in lo], [min(1.0, v) for v in hi]
    spread = [[m - v for m, v in zip(means, lo)], [v - m for m, v in zip(means, hi)]]
    ax.errorbar(xs, means, yerr=spread, marker="o", capsize=3, color=colour, linestyle=style, label=label)
