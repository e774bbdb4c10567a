"""Zero-shot classification with a joint model: class embeddings from prompt ensembles, images
scored by cosine similarity, and the metrics with their bootstrap intervals."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmcgns.errors import ConfigError

PROMPTS_FILE = "prompts.yaml"


def load_prompts(task: str, classes: tuple[str, ...], path: Path | None = None) -> dict[str, list[str]]:
    """The prompt set of `task` from `path` (a YAML file: class -> prompts, or task -> class -> prompts)
    or the packaged `cmcgns/joint/prompts.yaml`; every class needs at least one prompt."""
    from cmcgns.config.loading import read_yaml_file

    if path is None:
        source = resources.files("cmcgns.joint").joinpath(PROMPTS_FILE)
        data: Any = read_yaml_file(Path(str(source)), "prompt file")
        where = f"packaged {PROMPTS_FILE}"
    else:
        data, where = read_yaml_file(Path(path), "prompt file"), str(path)
    if isinstance(data, dict) and task in data:
        data = data[task]
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping class -> list of prompts for {task}")
    missing = [c for c in classes if c not in data]
    if missing:
        raise ConfigError(f"{where}: no prompts for {', '.join(missing)} (classes of {task}: {', '.join(classes)})")
    prompts = {}
    for c in classes:
        values = data[c]
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise ConfigError(f"{where}: {c}: give a non-empty list of prompt strings")
        prompts[c] = list(values)
    return prompts


def class_embeddings(encode_text, prompts: dict[str, list[str]]) -> torch.Tensor:
    """[C, E]: each class's prompts embedded, averaged and L2-normalised (the order of `prompts`)."""
    rows = [torch.nn.functional.normalize(encode_text(texts).mean(0), dim=0) for texts in prompts.values()]
    return torch.stack(rows)


def similarities(image_embeddings: torch.Tensor, class_embeds: torch.Tensor) -> np.ndarray:
    return (image_embeddings.float() @ class_embeds.float().t()).cpu().numpy()


def multiclass_scores(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Accuracy of the argmax and the macro F1 over every class (a class never predicted and absent
    scores 0, as sklearn's zero_division=0)."""
    from sklearn.metrics import f1_score

    guess = scores.argmax(1)
    classes = list(range(scores.shape[1]))
    return {
        "acc": float((guess == truth).mean()),
        "macro_f1": float(f1_score(truth, guess, labels=classes, average="macro", zero_division=0)),
    }


def binary_scores(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Two classes, the positive first: AUROC of sim(positive) - sim(negative), accuracy and F1 of the
    argmax (positive when its prompt is closer)."""
    from sklearn.metrics import f1_score, roc_auc_score

    margin = scores[:, 0] - scores[:, 1]
    positive = truth == 0
    guess = margin > 0
    out = {
        "acc": float((guess == positive).mean()),
        "f1": float(f1_score(positive, guess, zero_division=0)),
        "auroc": float("nan"),
    }
    if 0 < positive.sum() < len(positive):
        out["auroc"] = float(roc_auc_score(positive, margin))
    return out


def with_intervals(metric, truth: np.ndarray, scores: np.ndarray, seed: int, resamples: int) -> dict[str, float]:
    """`metric(truth, scores)` and percentile-bootstrap 95 % intervals over images (`NAME_ci_low/high`)."""
    from cmcgns.downstream.classification import bootstrap_ci

    out = metric(truth, scores)
    for name, (low, high) in bootstrap_ci(metric, truth, scores, seed=seed, resamples=resamples).items():
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    return out
