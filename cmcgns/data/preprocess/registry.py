"""Built-in dataset preprocessors, exposed through the ``register_datasets`` hook."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable

import pydantic

from cmcgns.plugins import Options, Register, hookimpl


@dataclasses.dataclass(frozen=True)
class Preprocessor:
    name: str
    kind: str
    run_fn: Callable[..., Any]
    options: dict[str, Any]

    def run(self, source: Path, out: Path, image_size: int = 256, workers: int = 1, splits: Path | None = None):
        """Preprocess into a staging folder inside `out` and swap it in only when complete (see
        preprocess.swap): an interrupted run never leaves a mixed cache, a re-run replaces only what
        the last run wrote (a user's own files in `out` stay), one process at a time per folder.
        The folder gets splits/<split>.txt (the ids of each split); `splits` (a folder of such
        files) assigns the rows from them instead of the dataset's own draw (split_lists)."""
        from cmcgns.data.manifest import is_prepared
        from cmcgns.data.preprocess import swap
        from cmcgns.data.preprocess.split_lists import read_split_lists
        from cmcgns.errors import DataError

        lists = read_split_lists(Path(splits)) if splits is not None else None  # read before the long part
        source, out = Path(source), Path(out)
        if not source.is_dir():
            raise DataError(f"{source}: source folder does not exist")
        if image_size < 16:
            raise DataError(f"--image-size {image_size}: must be at least 16 pixels (e.g. 256)")
        restored = swap.recover_legacy(Path(os.path.abspath(out)))
        if restored:
            print(f"preprocess: {restored}", file=sys.stderr)
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: exists and is not a folder; give a folder for --out")
        src_abs, out_abs = source.resolve(), out.resolve()
        if src_abs == out_abs or src_abs.is_relative_to(out_abs):
            raise DataError(
                f"--source {source} lies inside --out {out}; a re-run would replace it: give an --out outside the source"
            )
        if out_abs.is_relative_to(src_abs):
            raise DataError(f"--out {out} lies inside --source {source}; give an --out outside the source")
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        with swap.preprocess_lock(out) as lock:
            note = swap.finish_interrupted(out)
            if note:
                print(f"preprocess: {note}", file=sys.stderr)
            foreign = swap.foreign_entries(out)
            if foreign and not is_prepared(out):
                lock.path.unlink()  # ours: the folder is left exactly as it was
                raise DataError(
                    f"{out}: not empty and not a prepared dataset (first entry: {foreign[0]}); "
                    "give a new or empty folder (nothing was touched)"
                )
            staging = swap.staging_folder(out)
            try:
                result = self._build(source, staging, image_size, workers, lists, shown=out)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                if created and not swap.foreign_entries(out) and not is_prepared(out):
                    shutil.rmtree(out, ignore_errors=True)  # a first run that failed leaves no folder
                raise
            # a refused swap discards the staging copy; once its journal is written, an interruption is
            # finished by the next run or verify
            swap.swap_in(out, staging)
        result.out = out
        return result

    def _build(self, source: Path, staging: Path, image_size: int, workers: int, lists, shown: Path):
        from cmcgns.data.manifest import read_manifest
        from cmcgns.data.preprocess.eval_sets import DATASET_EVAL_SETS, write_eval_sets
        from cmcgns.data.preprocess.split_lists import apply_split_lists, finalize_split_files

        result = self.run_fn(source, staging, image_size, workers, **self.options)
        if lists is not None:
            result.split_lists, result.splits = apply_split_lists(staging, lists)
            result.rows = result.split_lists["kept"]
            result.dropped += result.split_lists["unlisted_dropped"]
        rows = read_manifest(staging).rows  # read once for the split and eval-set lists
        finalize_split_files(staging, rows)
        write_eval_sets(staging, rows, DATASET_EVAL_SETS.get(self.name, ()), shown=shown)
        return result


class MimicOptions(Options):
    min_sentences: int = pydantic.Field(1, ge=0)
    reports_root: Path | None = None


class ChexpertOptions(Options):
    uncertain: Literal["mgca", "ones", "zeros"] = pydantic.Field(
        "mgca", description="uncertain labels: mgca = U-ones for Atelectasis/Edema/Pleural Effusion, U-zeros otherwise"
    )
    val_images: int = pydantic.Field(
        5000, ge=0, description="train.csv images held out as val, whole patients (MGCA: 5,000; at most 10 %)"
    )


def _factory(name: str, kind: str, module: str) -> Callable[[Options], Preprocessor]:
    def build(options: Options) -> Preprocessor:
        import importlib

        fn = importlib.import_module(f"cmcgns.data.preprocess.{module}").preprocess
        return Preprocessor(name, kind, fn, options.model_dump())

    return build


BUILTIN_DATASETS = [
    ("mimic-cxr", "pretrain", "mimic", MimicOptions, "MIMIC-CXR-JPG images + reports -> pretraining pairs"),
    ("chexpert", "classification", "chexpert", ChexpertOptions, "CheXpert 5-label classification"),
    ("rsna", "detection", "rsna", None, "RSNA Pneumonia: classification, COCO boxes, box masks"),
    ("siim", "segmentation", "siim", None, "SIIM-ACR pneumothorax masks from RLE"),
    ("covidx", "classification", "covidx", None, "COVIDx CXR: normal/pneumonia/COVID-19 (or positive/negative)"),
    ("object-cxr", "detection", "objectcxr", None, "Object-CXR foreign objects as COCO boxes"),
    ("openi", "pretrain", "openi", None, "Open-i (IU X-ray) images + reports -> pretraining pairs, MeSH labels"),
]


@hookimpl
def register_datasets(register: Register) -> None:
    for name, kind, module, options, description in BUILTIN_DATASETS:
        register(name, _factory(name, kind, module), options=options, description=description)
