"""Built-in dataset preprocessors, exposed through the ``register_datasets`` hook."""

from __future__ import annotations

import dataclasses
import os
import shutil
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
        """Preprocess into a staging folder beside `out` and swap it in only when complete, so an
        interrupted run never leaves a mixed cache and a re-run leaves no orphans of the last one.
        The folder gets splits/<split>.txt (the ids of each split); `splits` (a folder of such
        files) assigns the rows from them instead of the dataset's own draw (split_lists)."""
        from cmcgns.data.manifest import is_prepared, read_manifest
        from cmcgns.data.preprocess.eval_sets import DATASET_EVAL_SETS, write_eval_sets
        from cmcgns.data.preprocess.split_lists import apply_split_lists, finalize_split_files, read_split_lists
        from cmcgns.errors import DataError

        lists = read_split_lists(Path(splits)) if splits is not None else None  # read before the long part
        source, out = Path(source), Path(out)
        if not source.is_dir():
            raise DataError(f"{source}: source folder does not exist")
        if image_size < 16:
            raise DataError(f"--image-size {image_size}: must be at least 16 pixels (e.g. 256)")
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: exists and is not a folder; give a folder for --out")
        if out.is_dir() and any(out.iterdir()) and not is_prepared(out):
            raise DataError(
                f"{out}: not empty and not a prepared dataset; give a new or empty folder (nothing was touched)"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{out.name}.partial-*"):  # left by an interrupted run
            shutil.rmtree(stale, ignore_errors=True)
        staging = out.parent / f".{out.name}.partial-{os.getpid()}"
        try:
            result = self.run_fn(source, staging, image_size, workers, **self.options)
            if lists is not None:
                result.split_lists, result.splits = apply_split_lists(staging, lists)
                result.rows = result.split_lists["kept"]
                result.dropped += result.split_lists["unlisted_dropped"]
            rows = read_manifest(staging).rows  # read once for the split and eval-set lists
            finalize_split_files(staging, rows)
            write_eval_sets(staging, rows, DATASET_EVAL_SETS.get(self.name, ()), shown=out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        previous = out.parent / f".{out.name}.previous-{os.getpid()}"
        if out.exists():
            out.rename(previous)
        staging.rename(out)
        shutil.rmtree(previous, ignore_errors=True)
        result.out = out
        return result


class MimicOptions(Options):
    min_sentences: int = pydantic.Field(1, ge=0)
    reports_root: Path | None = None


class ChexpertOptions(Options):
    uncertain: Literal["mgca", "ones", "zeros"] = pydantic.Field(
        "mgca", description="uncertain labels: mgca = U-ones for Atelectasis/Edema/Pleural Effusion, U-zeros otherwise"
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
