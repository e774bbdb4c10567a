"""Built-in dataset preprocessors, exposed through the ``register_datasets`` hook."""

from __future__ import annotations

import dataclasses
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

    def run(self, source: Path, out: Path, image_size: int = 256, workers: int = 1):
        from cmcgns.errors import DataError

        if not Path(source).is_dir():
            raise DataError(f"{source}: source folder does not exist")
        return self.run_fn(Path(source), Path(out), image_size, workers, **self.options)


class MimicOptions(Options):
    min_sentences: int = pydantic.Field(1, ge=0)
    reports_root: Path | None = None


class ChexpertOptions(Options):
    uncertain: Literal["ones", "zeros"] = "ones"


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
    ("covidx", "classification", "covidx", None, "COVIDx CXR positive/negative"),
    ("object-cxr", "detection", "objectcxr", None, "Object-CXR foreign objects as COCO boxes"),
]


@hookimpl
def register_datasets(register: Register) -> None:
    for name, kind, module, options, description in BUILTIN_DATASETS:
        register(name, _factory(name, kind, module), options=options, description=description)
