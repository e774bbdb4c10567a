"""Split ID files that others can reuse: every prepared folder holds `splits/<split>.txt` (one row
id per line, manifest order), and `preprocess --splits DIR` assigns rows from such files instead
of drawing (two labs, or a paper's published lists, then train and test on the same rows).

With `--splits`: a row whose id is in no list is dropped (counted in drop_report.json as
`not_in_split_lists`); an id listed but absent from the data is counted and named in
drop_report.json (`split_lists.missing`) and on the console, never silently ignored; an id in two
lists is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cmcgns.data.manifest import (
    DERIVED_META_KEYS,
    DROP_REPORT_NAME,
    MANIFEST_NAME,
    META_NAME,
    SPLITS,
    read_manifest,
    write_manifest,
)
from cmcgns.errors import DataError
from cmcgns.io.atomic import write_json, write_text

SPLIT_DIR = "splits"


def id_lines(text: str) -> list[str]:
    """The ids of an id-list file: one per line, blank lines and # comments skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_split_lists(directory: Path) -> dict[str, list[str]]:
    """{split: ids} from DIR/train.txt, val.txt, test.txt (blank lines and # comments skipped)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"--splits {directory}: not a folder (it should hold train.txt, val.txt, test.txt)")
    lists: dict[str, list[str]] = {}
    for split in SPLITS:
        path = directory / f"{split}.txt"
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read split list ({type(exc).__name__}: {exc})") from None
        lists[split] = id_lines(text)
    if not lists:
        raise DataError(f"--splits {directory}: holds none of {', '.join(s + '.txt' for s in SPLITS)}")
    seen: dict[str, str] = {}
    for split, ids in lists.items():
        for item in ids:
            if item in seen:
                raise DataError(f"{directory / (split + '.txt')}: id {item!r} is also in {seen[item]}.txt")
            seen[item] = split
    return lists


def write_split_lists(out: Path, rows: list[dict]) -> dict[str, str]:
    """splits/<split>.txt for every split of the rows; returns {split: relative path}."""
    written = {}
    for split in SPLITS:
        ids = [str(r["id"]) for r in rows if r["split"] == split]
        if ids:
            written[split] = f"{SPLIT_DIR}/{split}.txt"
            write_text(Path(out) / written[split], "\n".join(ids) + "\n")
    return written


def finalize_split_files(out: Path, rows: list[dict]) -> dict[str, str]:
    """Write splits/<split>.txt for the prepared folder (its manifest `rows`) and record them in meta.json."""
    written = write_split_lists(out, rows)
    meta = json.loads((Path(out) / META_NAME).read_text())
    meta["split_files"] = written
    write_json(Path(out) / META_NAME, meta)
    return written


def apply_split_lists(out: Path, lists: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, int]]:
    """Reassign the prepared rows in `out` (a staging folder) to the listed splits, drop the
    unlisted ones (with their cached files), rewrite manifest, meta, COCO files and drop report.
    Returns what happened (kept, unlisted, missing: count and the first ids) and the split counts."""
    from cmcgns.data.preprocess.coco import write_coco

    manifest = read_manifest(out)
    assigned = {item: split for split, ids in lists.items() for item in ids}
    kept, unlisted = [], []
    for row in manifest.rows:
        split = assigned.get(str(row["id"]))
        if split is None:
            unlisted.append(row)
        else:
            kept.append(dict(row, split=split))
    present = {str(r["id"]) for r in manifest.rows}
    missing = [item for item in assigned if item not in present]
    if not kept:
        raise DataError(f"--splits: none of the {len(assigned)} listed ids is in the data (e.g. {missing[:3]})")
    for row in unlisted:  # their cached files would be orphans
        for key in ("image", "mask"):
            if row.get(key):
                (Path(out) / row[key]).unlink(missing_ok=True)
    meta = dict(manifest.meta)
    extra = {k: v for k, v in meta.items() if k not in DERIVED_META_KEYS}
    if meta.get("coco"):
        first = json.loads((Path(out) / next(iter(meta["coco"].values()))).read_text())
        categories = [c["name"] for c in sorted(first["categories"], key=lambda c: c["id"])]
        for name in meta["coco"].values():
            (Path(out) / name).unlink(missing_ok=True)
        extra["coco"] = write_coco(Path(out), kept, categories, int(meta["image_size"]))
    outcome = {
        "source": "--splits",
        "listed": len(assigned),
        "kept": len(kept),
        "unlisted_dropped": len(unlisted),
        "missing": len(missing),
        "missing_examples": missing[:20],
    }
    extra["split_lists"] = outcome
    splits = write_manifest(
        out, meta["dataset"], meta["kind"], kept, int(meta["image_size"]), Path(meta["source"]), extra
    )
    report_path = Path(out) / DROP_REPORT_NAME
    report = json.loads(report_path.read_text())
    if unlisted:
        report["by_reason"]["not_in_split_lists"] = len(unlisted)
        report.setdefault("examples", {})["not_in_split_lists"] = [
            {"item": str(r["id"]), "detail": "in no --splits list"} for r in unlisted[:20]
        ]
        report["dropped"] = report.get("dropped", 0) + len(unlisted)
    report["kept"] = len(kept)
    report["split_lists"] = outcome
    write_json(report_path, report)
    return outcome, splits


def check_split_lists(directory: Path, rows: list[dict], meta: dict) -> list[str]:
    """verify: the split files agree with the manifest, and no id is in two splits."""
    problems = []
    by_split: dict[str, list[str]] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(str(row.get("id")))
    owner: dict[str, str] = {}
    for split, ids in by_split.items():
        for item in ids:
            if item in owner and owner[item] != split:
                problems.append(f"{directory / MANIFEST_NAME}: id {item!r} is in both {owner[item]} and {split}")
            owner[item] = split
    for split, name in (meta.get("split_files") or {}).items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: split list missing (meta.json names it)")
            continue
        listed = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        if listed != by_split.get(split, []):
            problems.append(
                f"{path}: {len(listed)} ids, manifest split {split} has {len(by_split.get(split, []))} "
                "(or in another order); re-run preprocess"
            )
    if meta.get("split_files") is not None and set(meta["split_files"]) != set(by_split):
        problems.append(
            f"{directory / META_NAME}: split files for {sorted(meta['split_files'])}, manifest splits {sorted(by_split)}"
        )
    return problems
