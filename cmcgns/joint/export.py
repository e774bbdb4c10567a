"""The joint model export contract: what a finished pretraining run leaves in `RUN/model/` and
`cmcgns.load_model` reads.

    model.safetensors   every weight of the encoder model (image and text encoders, projections,
                        pooling, cross-modal attention); stable metadata, so equal weights give
                        identical bytes and the hash identifies them
    text/               the text encoder's transformers config.json and the tokenizer files (no
                        weights: they are in model.safetensors)
    config.yaml         the pretraining config the run resolved (provenance)
    model.json          the manifest: every file above with its sha256, the architecture, image
                        preprocessing, report tokenisation, logit scale, config hash and run id

A folder whose files do not match model.json is refused with one line naming the file. File
names and manifest keys are spelled here and nowhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cmcgns.data.images import MEAN, STD
from cmcgns.errors import DataError
from cmcgns.export import CHANNELS, cpu_state, file_sha256, stable_safetensors
from cmcgns.io.atomic import write_bytes, write_json, write_text

if TYPE_CHECKING:
    from cmcgns.config.schema import PretrainConfig

FORMAT = "cmcgns-joint-model"
EXPORT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "model.json"
CONFIG_FILE = "config.yaml"
TEXT_DIR = "text"
DIR_NAME = "model"  # RUN/model, beside RUN/export (the backbone)
SENTENCES = (
    "FINDINGS then IMPRESSION (the whole text when it has neither header), split into sentences by "
    "cmcgns.data.reports.sentences, each tokenised alone and packed [CLS] s0 s1 ... [SEP]"
)
RESIZE = "grayscale, bilinear resize to image_size x image_size, [0, 1], then (x - mean) / std"


@dataclasses.dataclass(frozen=True)
class ModelFolder:
    """A verified export folder: its manifest and where its parts are."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def weights_file(self) -> Path:
        return self.directory / WEIGHTS_FILE

    @property
    def text_dir(self) -> Path:
        return self.directory / TEXT_DIR

    @property
    def weights_sha256(self) -> str:
        return str(self.manifest["files"][WEIGHTS_FILE])

    @property
    def weights_id(self) -> str:
        """The first 16 hex digits of the weights' sha256 (what results rows record)."""
        return self.weights_sha256[:16]

    @property
    def image_size(self) -> int:
        return int(self.manifest["image"]["image_size"])

    @classmethod
    def read(cls, path: Path) -> ModelFolder:
        """The folder at `path` (RUN/model, or a run folder holding one), every file checked against
        the manifest's sha256."""
        directory = Path(path)
        if not (directory / MANIFEST_FILE).is_file() and (directory / DIR_NAME / MANIFEST_FILE).is_file():
            directory = directory / DIR_NAME
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            hint = " (that is the image backbone only)" if (directory / "backbone.json").is_file() else ""
            raise DataError(
                f"{manifest_path}: missing{hint}; pass the model/ folder of a finished `cmcgns pretrain` run"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("format") != FORMAT:
                raise ValueError(f"format is {manifest.get('format')!r}, not {FORMAT!r}")
            files = manifest["files"]
            for key in ("image", "text", "architecture"):
                manifest[key]  # noqa: B018 (presence check)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{manifest_path}: not a cmcgns model manifest ({type(exc).__name__}: {exc})") from None
        if int(manifest.get("export_version", 0)) > EXPORT_VERSION:
            raise DataError(
                f"{manifest_path}: export version {manifest['export_version']} is newer than this cmcgns reads "
                f"({EXPORT_VERSION}); upgrade cmcgns"
            )
        for name, digest in sorted(files.items()):
            file = directory / name
            if not file.is_file():
                raise DataError(f"{file}: listed in {MANIFEST_FILE} but missing; copy the whole model folder")
            if file_sha256(file) != digest:
                raise DataError(
                    f"{file}: does not match its sha256 in {MANIFEST_FILE} (changed or damaged after export); "
                    f"copy the folder again or re-export the run"
                )
        return cls(directory, manifest)


def _tree_hashes(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): file_sha256(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def weights_bytes(model: torch.nn.Module) -> bytes:
    """The safetensors bytes of a model's weights (identical for equal weights)."""
    return stable_safetensors(cpu_state(model), json.dumps({"format": FORMAT, "export_version": EXPORT_VERSION}))


def write_model_export(
    out_dir: Path,
    model: torch.nn.Module,
    *,
    architecture: dict[str, Any],
    image: dict[str, Any],
    text: dict[str, Any],
    text_config: Any,
    tokenizer: Any,
    config_yaml: str,
    logit_scale: float | None,
    config_hash: str | None,
    run_id: str | None,
) -> ModelFolder:
    """Write the folder next to `out_dir` and move it into place in one rename: an interrupted export
    leaves the previous one (if any) whole."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.writing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / TEXT_DIR).mkdir(parents=True)
    try:
        write_bytes(staging / WEIGHTS_FILE, weights_bytes(model))
        text_config.to_json_file(str(staging / TEXT_DIR / "config.json"))
        tokenizer.save_pretrained(str(staging / TEXT_DIR))
        write_text(staging / CONFIG_FILE, config_yaml)
        manifest = {
            "format": FORMAT,
            "export_version": EXPORT_VERSION,
            "architecture": architecture,
            "image": {
                **image,
                "channels": CHANNELS,
                "mean": [MEAN] * 3,
                "std": [STD] * 3,
                "preprocessing": RESIZE,
            },
            "text": {**text, "tokenizer_dir": TEXT_DIR},
            "embeddings": "L2-normalised, the space the global image-report loss trained",
            "logit_scale": logit_scale,
            "config_hash": config_hash,
            "run_id": run_id,
            "files": _tree_hashes(staging),
        }
        write_json(staging / MANIFEST_FILE, manifest)
        previous = out_dir.with_name(f".{out_dir.name}.previous-{os.getpid()}")
        if out_dir.exists():
            out_dir.rename(previous)
        staging.rename(out_dir)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    return ModelFolder(out_dir, manifest)


def export_trained_model(
    out_dir: Path, model: Any, config: PretrainConfig, tokenizer: Any, logit_scale: float | None, run_id: str
) -> ModelFolder:
    """`write_model_export` for a pretraining run's `CMCGNSModel` and its resolved `PretrainConfig`."""
    from cmcgns.config.loading import dump_config
    from cmcgns.config.resolve import config_hash

    architecture = config.model.model_dump(mode="json", by_alias=True)
    architecture["image"]["pretrained_path"] = None  # the weights are in model.safetensors
    architecture["text"].update(path=None, tokenizer_path=None)
    return write_model_export(
        out_dir,
        model,
        architecture=architecture,
        image={"timm_model": config.model.image.name, "image_size": config.data.image_size, "in_chans": 3},
        text={
            "max_tokens": config.data.max_tokens,
            "max_sentences": config.data.max_sentences,
            "sentences": SENTENCES,
        },
        text_config=model.text_encoder.model.config,
        tokenizer=tokenizer,
        config_yaml=dump_config(config),
        logit_scale=logit_scale,
        config_hash=config_hash(config),
        run_id=run_id,
    )
