"""What each number of a pretraining summary would be by chance, its 95 % interval, and whether
the run is distinguishable from chance on it.

- Retrieval R@k over N image-report pairs: chance k/N (a random ranking); Wilson interval.
- Linear-probe AUROC: chance 0.5; Hanley-McNeil standard error per label from its positives and
  negatives in the evaluation split, combined over the labels averaged.
- InfoNCE losses: chance log(number of candidates) times the loss weight (uniform logits); the
  global loss has the gathered batch as candidates, the local report loss the valid sentences of
  the gathered batch (logged per step). A loss has no interval here: it is the last logged step's.

A number whose interval holds its chance value is reported as "not distinguishable from chance"
and its value is not shown as a result.
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def hanley_mcneil_se(auc: float, positives: int, negatives: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def mean_auroc_interval(auc: float, label_counts: list[tuple[int, int]]) -> tuple[float, float]:
    """Interval of a mean AUROC over labels, each with (positives, negatives): the wider of the
    Hanley-McNeil interval (labels' errors independent, each at the mean's value) and a Wilson
    interval with n = the smaller class count per label (mean over labels). The second keeps
    a perfect score on a handful of images from looking certain (Hanley-McNeil's variance is 0
    at AUROC 1)."""
    if not label_counts:
        return (0.0, 1.0)
    se = math.sqrt(sum(hanley_mcneil_se(auc, p, n) ** 2 for p, n in label_counts)) / len(label_counts)
    n_small = max(1, round(sum(min(p, n) for p, n in label_counts) / len(label_counts)))
    low, high = wilson_interval(auc * n_small, n_small)
    return (max(0.0, min(auc - Z95 * se, low)), min(1.0, max(auc + Z95 * se, high)))


def verdict(value: float, chance: float, interval: tuple[float, float] | None, higher_is_better: bool) -> str:
    if interval is not None and interval[0] <= chance <= interval[1]:
        return "not distinguishable from chance"
    better = value > chance if higher_is_better else value < chance
    if interval is None and abs(value - chance) < 0.05 * max(abs(chance), 1e-9):
        return "at chance"
    return "better than chance" if better else "worse than chance"


def judge_summary(summary: dict[str, Any], loss_chance: dict[str, tuple[float, str]]) -> dict[str, dict[str, Any]]:
    """One entry per number: value, chance, interval (or None), verdict and what chance means;
    `loss_chance` maps a loss to (its value at uniform logits, what that is)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (chance, meaning) in loss_chance.items():
        value = summary.get("final_losses", {}).get(name)
        if value is not None and chance > 0:
            out[name] = {
                "value": value,
                "chance": chance,
                "interval": None,
                "verdict": verdict(value, chance, None, higher_is_better=False),
                "chance_is": meaning,
            }
    evaluation = summary.get("eval") or {}
    pairs = int(evaluation.get("eval_pairs") or 0)
    for k in (1, 5):
        value = evaluation.get(f"retrieval_r{k}")
        if value is None or pairs == 0:
            continue
        chance = min(1.0, k / pairs)
        interval = wilson_interval(value * pairs, pairs)
        out[f"retrieval_r{k}"] = {
            "value": value,
            "chance": chance,
            "interval": interval,
            "verdict": verdict(value, chance, interval, higher_is_better=True),
            "chance_is": f"{k}/{pairs}: a random ranking of the {pairs} evaluation reports",
        }
    counts = [tuple(c) for c in evaluation.get("probe_label_counts") or []]
    for key in ("linear_probe_auc", "linear_probe_auc_10pct", "linear_probe_auc_1pct"):
        value = evaluation.get(key)
        if value is None or not counts:
            continue
        interval = mean_auroc_interval(value, counts)  # type: ignore[arg-type]
        out[key] = {
            "value": value,
            "chance": 0.5,
            "interval": interval,
            "verdict": verdict(value, 0.5, interval, higher_is_better=True),
            "chance_is": f"0.5, a random score; {len(counts)} label(s) of {pairs} evaluation images",
        }
    return out


def format_judgement(judged: dict[str, dict[str, Any]]) -> list[str]:
    """Aligned console lines: a number is shown only where it is distinguishable from chance."""
    lines = []
    width = max((len(name) for name in judged), default=0)
    for name, entry in judged.items():
        interval = entry["interval"]
        shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        if entry["verdict"] == "not distinguishable from chance":
            lines.append(
                f"{name:<{width}}  not distinguishable from chance (95 % interval {shown} holds chance "
                f"{entry['chance']:.3f}; {entry['chance_is']})"
            )
            continue
        flag = "" if entry["verdict"] == "better than chance" else f"  <-- {entry['verdict'].upper()}"
        lines.append(
            f"{name:<{width}}  {entry['value']:.4f} {shown:>16}  chance {entry['chance']:.4f} "
            f"({entry['chance_is']}){flag}"
        )
    return lines
