"""Fixed evaluation sets drawn once when a dataset is prepared, written as ID lists so the same set
can be reused (by other labs too), and kept out of training where the protocol says so.

The 5x200 rule (GLoRIA's CheXpert 5x200, the form BenchX reuses): for each of Atelectasis,
Cardiomegaly, Consolidation, Edema and Pleural Effusion, images positive (a definite 1, never an
uncertain mention) for that class and negative or not mentioned for the other four, 200 of each
drawn in a seeded order. When a class has fewer eligible images, every class gets the smallest
count (the set stays balanced) and meta.json says so. Raw mentions are read from `raw_labels`
where a manifest keeps them (CheXpert, whose `labels` have the uncertainty policy applied), else
from `labels` (MIMIC-CXR keeps -1 for uncertain).

Files: `eval_sets/<name>.txt`, one row id per line (class by class); meta.json `eval_sets.<name>`
records the classes, the split it was drawn from, the count per class and whether training
must exclude it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cmcgns.data.manifest import META_NAME, Manifest
from cmcgns.data.preprocess.split_lists import id_lines
from cmcgns.errors import DataError
from cmcgns.io.atomic import write_json, write_text

EVAL_DIR = "eval_sets"
FIVE_CLASSES = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


@dataclasses.dataclass(frozen=True)
class EvalSetRule:
    name: str
    split: str  # where the set is drawn from
    classes: tuple[str, ...] = FIVE_CLASSES
    per_class: int = 200
    exclude_from_training: bool = False
    seed: int = 0
    balanced: bool = True  # False: up to per_class of each class, not the smallest class's count


# dataset -> the sets `cmcgns preprocess` draws for it
DATASET_EVAL_SETS: dict[str, tuple[EvalSetRule, ...]] = {
    # GLoRIA/MGCA: drawn from the training images, which chexpert-cls then does not train on
    "chexpert": (EvalSetRule("chexpert-5x200", "train", exclude_from_training=True),),
    "mimic-cxr": (EvalSetRule("mimic-5x200", "test"),),
    # Open-i is small (about 3,300 frontal images): every eligible test image, up to 200 a class
    "openi": (EvalSetRule("openi-5x200", "test", balanced=False),),
}


def mentions(row: dict) -> dict[str, Any]:
    return row.get("raw_labels") or row.get("labels") or {}


def exclusive_class(row: dict, classes: tuple[str, ...]) -> str | None:
    """The one class of `classes` the row is definitely positive for with the others 0 or absent."""
    values = mentions(row)
    positive = [c for c in classes if values.get(c) == 1]
    others_clear = all(values.get(c) in (0, None) for c in classes if c not in positive)
    return positive[0] if len(positive) == 1 and others_clear else None


def _order(seed: int, item: str) -> str:
    return hashlib.sha256(f"{seed}:{item}".encode()).hexdigest()


def draw(rows: list[dict], rule: EvalSetRule) -> tuple[dict[str, list[str]], dict[str, int]]:
    """({class: ids}, eligible count per class) of the rule's split, balanced."""
    eligible: dict[str, list[str]] = {c: [] for c in rule.classes}
    for row in rows:
        if row["split"] != rule.split:
            continue
        found = exclusive_class(row, rule.classes)
        if found is not None:
            eligible[found].append(str(row["id"]))
    counts = {c: len(ids) for c, ids in eligible.items()}
    n = min([rule.per_class, *counts.values()]) if rule.balanced else rule.per_class
    return {c: sorted(ids, key=lambda i: _order(rule.seed, i))[:n] for c, ids in eligible.items()}, counts


def write_eval_sets(
    out: Path, rows: list[dict], rules: tuple[EvalSetRule, ...], shown: Path | None = None
) -> dict[str, dict]:
    """Draw each rule's set from the manifest `rows` of the prepared folder `out` (a staging folder,
    named as `shown` in messages), write its list and record it in meta.json."""
    if not rules:
        return {}
    meta = json.loads((Path(out) / META_NAME).read_text())
    recorded = {}
    for rule in rules:
        chosen, eligible = draw(rows, rule)
        per_class = min((len(ids) for ids in chosen.values()), default=0)
        relative = f"{EVAL_DIR}/{rule.name}.txt"
        write_text(Path(out) / relative, "".join(f"{i}\n" for c in rule.classes for i in chosen[c]))
        recorded[rule.name] = {
            "file": relative,
            "classes": list(rule.classes),
            "split": rule.split,
            "per_class": per_class,
            "requested_per_class": rule.per_class,
            "eligible": eligible,
            "exclude_from_training": rule.exclude_from_training,
            "rule": "definite positive for exactly one class, the others 0 or not mentioned; seeded order",
        }
        if per_class < rule.per_class and rule.balanced:
            short = min(eligible, key=lambda c: eligible[c])
            print(
                f"{shown or out}: {rule.name} has {per_class} images per class, not {rule.per_class} "
                f"({short}: {eligible[short]} eligible in {rule.split})",
                file=sys.stderr,
                flush=True,
            )
    meta["eval_sets"] = recorded
    write_json(Path(out) / META_NAME, meta)
    return recorded


def read_id_list(path: Path) -> list[str]:
    """One id per line (blank lines and # comments skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: id list does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read id list ({type(exc).__name__}: {exc})") from None
    ids = id_lines(text)
    if not ids:
        raise DataError(f"{path}: lists no ids")
    return ids


def eval_set_rows(
    manifest: Manifest, name: str, ids_file: Path | None, classes: tuple[str, ...]
) -> tuple[list[dict], list[str], str]:
    """(rows, class of each row, where the list came from) of a named set: `ids_file` when given,
    else the list preprocess wrote. A listed id absent from the manifest, or not of exactly one
    class, is an error naming the file and the id."""
    if ids_file is None:
        entry = manifest.meta.get("eval_sets", {}).get(name)
        if entry is None:
            raise DataError(
                f"{manifest.directory}: has no {name} set (prepared by an older cmcgns); rerun `cmcgns preprocess`, "
                f"or pass the task option ids=FILE"
            )
        ids_file, source = manifest.directory / entry["file"], "preprocess"
    else:
        source = str(ids_file)
    by_id = {str(r["id"]): r for r in manifest.rows}
    rows, labels = [], []
    for item in read_id_list(ids_file):
        row = by_id.get(item)
        if row is None:
            raise DataError(f"{ids_file}: id {item!r} is not a row of {manifest.directory}")
        found = exclusive_class(dict(row), classes)
        if found is None:
            raise DataError(f"{ids_file}: id {item!r} is not positive for exactly one of {', '.join(classes)}")
        rows.append(dict(row))
        labels.append(found)
    return rows, labels, source


def training_exclusions(manifest: Manifest) -> set[str]:
    """Ids of every recorded set that training must not see."""
    excluded: set[str] = set()
    for entry in manifest.meta.get("eval_sets", {}).values():
        if entry.get("exclude_from_training"):
            excluded.update(read_id_list(manifest.directory / entry["file"]))
    return excluded
