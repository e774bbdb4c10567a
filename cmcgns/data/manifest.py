"""The prepared-dataset contract: what `cmcgns preprocess` writes and every reader reads.

A prepared dataset folder holds `manifest.jsonl` (one row per image), `meta.json` (dataset, kind, split
counts, schema version) and `drop_report.json`. File names, the schema version and the split
vocabulary are spelled here and nowhere else.

Splits are one vocabulary across datasets: `train`, `val`, `test`. Official names are mapped when rows
are written and again when older manifests are read: MIMIC-CXR's `validate`, and `valid`/`validation`,
become `val`. (Where an official split is used as the test set, as CheXpert's `valid` and
Object-CXR's `dev` are under the MGCA protocol, the preprocessor says so and writes `test`.)
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any, TypedDict, cast
from collections.abc import Iterable

from cmcgns import __version__
from cmcgns.errors import DataError
from cmcgns.io.atomic import write_json, write_jsonl

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
META_NAME = "meta.json"
DROP_REPORT_NAME = "drop_report.json"
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"validate": "val", "valid": "val", "validation": "val"}


class ManifestRow(TypedDict, total=False):
    id: str
    image: str  # relative to the prepared folder
    split: str  # one of SPLITS
    labels: dict[str, float | None]
    sentences: list[dict[str, Any]]  # pretraining rows: report sentences with section and index
    boxes: list[dict[str, Any]]  # detection rows: {"bbox": [x, y, w, h] in cached-image pixels, "category": ...}
    mask: str  # segmentation rows: class-index PNG relative to the prepared folder
    schema_version: int


def canonical_split(name: str) -> str:
    """`validate` -> `val`; unknown names are an error naming the vocabulary."""
    split = SPLIT_ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if split not in SPLITS:
        raise DataError(f"split {name!r}: not one of {', '.join(SPLITS)} (aliases: {', '.join(SPLIT_ALIASES)})")
    return split


@dataclasses.dataclass
class Manifest:
    directory: Path
    meta: dict[str, Any]
    rows: list[ManifestRow]

    def split(self, *names: str) -> list[ManifestRow]:
        """Rows of the given splits (aliases accepted), in manifest order."""
        wanted = {canonical_split(n) for n in names}
        return [r for r in self.rows if r["split"] in wanted]

    def path(self, relative: str) -> Path:
        return self.directory / relative


# meta.json keys write_manifest derives itself; the rest of a meta (coco, labels, ...) is the dataset's own
DERIVED_META_KEYS = (
    "schema_version",
    "dataset",
    "kind",
    "rows",
    "splits",
    "image_size",
    "source",
    "created",
    "cmcgns_version",
)


def write_manifest(
    out: Path,
    dataset: str,
    kind: str,
    rows: list[dict],
    image_size: int,
    source: Path,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Write manifest.jsonl and meta.json (splits mapped to the vocabulary); returns the split counts."""
    out = Path(out)
    for row in rows:
        row["split"] = canonical_split(row["split"])
        row["schema_version"] = SCHEMA_VERSION
    splits = dict(collections.Counter(r["split"] for r in rows))
    write_jsonl(out / MANIFEST_NAME, rows)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "kind": kind,
        "rows": len(rows),
        "splits": splits,
        "image_size": image_size,
        "source": str(source),
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "cmcgns_version": __version__,
        **(extra_meta or {}),
    }
    write_json(out / META_NAME, meta)
    return splits


def sentence_texts(row: ManifestRow | dict) -> list[str]:
    """A pretraining row's report as its sentences in report order (what the model reads)."""
    return [s["text"] for s in sorted(row["sentences"], key=lambda s: s["index"])]


def sentence_meanings(row: ManifestRow | dict) -> list[str | None]:
    """A pretraining row's recorded sentence meanings in report order (synthetic data records them;
    None where a sentence has none). No model reads them: the mechanism scores and the oracle do."""
    return [s.get("meaning") for s in sorted(row["sentences"], key=lambda s: s["index"])]


def records_meanings(rows: Iterable[ManifestRow | dict]) -> bool:
    """Whether any sentence of these pretraining rows records its meaning (synthetic data does; real data not)."""
    return any(s.get("meaning") is not None for row in rows for s in row["sentences"])


def write_rows(out: Path, rows: Iterable[dict], meta: dict[str, Any]) -> None:
    """A derived view of a manifest (e.g. a label-fraction subset) with the same meta."""
    rows = list(rows)
    write_jsonl(Path(out) / MANIFEST_NAME, rows)
    write_json(
        Path(out) / META_NAME,
        {**meta, "rows": len(rows), "splits": dict(collections.Counter(r["split"] for r in rows))},
    )


def is_prepared(directory: Path) -> bool:
    return (Path(directory) / META_NAME).is_file()


def _contained(relative: object, view_of: Path | None = None) -> bool:
    """A manifest path that stays inside its folder: relative, no `..` part (or, in a derived view,
    an absolute path inside the viewed folder)."""
    if not isinstance(relative, str) or not relative:
        return False
    path = Path(relative)
    if view_of is not None and path.is_absolute():
        return ".." not in path.parts and path.is_relative_to(view_of)
    return not path.is_absolute() and ".." not in path.parts and not relative.startswith(("/", "\\"))


LABELLED_KINDS = ("classification", "detection", "segmentation")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def row_field_problem(row: dict, kind: object) -> str | None:
    """What is wrong with a row's fields for its folder's kind (a hand-edited manifest), or None:
    labelled kinds need `labels` as {name: number or null}; pretraining rows need `sentences` as a
    non-empty list of {text, index}; `boxes`, when present, a list of {bbox: [x, y, w, h]}."""
    labels = row.get("labels")
    if kind in LABELLED_KINDS and labels is None:
        return f"no `labels` field (a {kind} row needs {{name: 0 or 1}})"
    if labels is not None:
        if not isinstance(labels, dict):
            return f"`labels` is {json.dumps(labels)[:40]}, not {{name: 0 or 1}}"
        bad = next((k for k, v in labels.items() if v is not None and not _is_number(v)), None)
        if bad is not None:
            return f"`labels.{bad}` is {json.dumps(labels[bad])[:40]}, not a number (0, 1) or null"
    if kind == "pretrain":
        sentences = row.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            return "no `sentences` (a pretraining row needs a non-empty list of {text, index})"
        bad_at = next(
            (
                i
                for i, s in enumerate(sentences)
                if not isinstance(s, dict) or not isinstance(s.get("text"), str) or not isinstance(s.get("index"), int)
            ),
            None,
        )
        if bad_at is not None:
            return f"`sentences[{bad_at}]` is not {{text: str, index: int}}"
    boxes = row.get("boxes")
    if boxes is not None and (
        not isinstance(boxes, list)
        or not all(
            isinstance(b, dict)
            and isinstance(b.get("bbox"), list)
            and len(b["bbox"]) == 4
            and all(map(_is_number, b["bbox"]))
            for b in boxes
        )
    ):
        return "`boxes` is not a list of {bbox: [x, y, w, h], category}"
    return None


def read_manifest(directory: Path, checked: bool = True) -> Manifest:
    """The manifest of a prepared folder. `checked` (every reader but `verify`, which lists problems
    instead) refuses rows whose image or mask leads outside the folder and ids in two splits. A
    derived view (meta `view_of`, written by a task into its work folder) may name absolute paths
    inside the folder it views."""
    directory = Path(directory)
    meta_path = directory / META_NAME
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: missing; run `cmcgns preprocess DATASET --out {directory}` first")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path}: not valid JSON ({exc}); rerun `cmcgns preprocess`") from None
    if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
        version = meta.get("schema_version") if isinstance(meta, dict) else None
        raise DataError(
            f"{meta_path}: schema version {version} but this cmcgns reads {SCHEMA_VERSION}; rerun `cmcgns preprocess`"
        )
    manifest = directory / MANIFEST_NAME
    if not manifest.is_file():
        raise DataError(f"{manifest}: missing; rerun `cmcgns preprocess`")
    rows: list[ManifestRow] = []
    split_of: dict[str, tuple[str, int]] = {}
    view_of = Path(meta["view_of"]) if isinstance(meta.get("view_of"), str) else None
    with manifest.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{manifest}:{lineno}: not valid JSON ({exc})") from None
            if not isinstance(row, dict) or "split" not in row or "image" not in row:
                raise DataError(f"{manifest}:{lineno}: a row needs at least `image` and `split`")
            try:
                row["split"] = canonical_split(row["split"])
            except DataError as exc:
                raise DataError(f"{manifest}:{lineno}: {exc}") from None
            for field in ("image", "mask") if checked else ():
                if field in row and not _contained(row[field], view_of):
                    raise DataError(
                        f"{manifest}:{lineno}: {field} {row[field]!r} is not a relative path inside {directory}; "
                        f"rerun `cmcgns preprocess` (rows never read files outside their folder)"
                    )
            problem = row_field_problem(row, meta.get("kind")) if checked else None
            if problem:
                raise DataError(f"{manifest}:{lineno}: {problem}; fix the row or rerun `cmcgns preprocess`")
            item = row.get("id")
            if item is not None and checked:
                first = split_of.setdefault(str(item), (row["split"], lineno))
                if first[0] != row["split"]:
                    raise DataError(
                        f"{manifest}:{lineno}: id {item!r} is in split {row['split']} and in {first[0]} (line {first[1]}); "
                        f"a row in two splits would be trained and tested on"
                    )
            rows.append(cast(ManifestRow, row))
    if isinstance(meta.get("splits"), dict):
        counts: dict[str, int] = collections.Counter()
        for name, n in meta["splits"].items():
            counts[SPLIT_ALIASES.get(name, name)] += n
        meta["splits"] = dict(counts)
    return Manifest(directory, meta, rows)
