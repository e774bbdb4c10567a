"""The backbone export contract: what a pretraining run leaves in `RUN/export/` and every downstream
reader (our tasks, timm, OpenMMLab) loads.

    backbone.safetensors   timm state dict of the image encoder (no head); stable metadata, so the
                           bytes, and their hash, identify the weights
    backbone_mm.pth        the same tensors under `backbone.encoder.` for other OpenMMLab setups
                           (our own mm backbone reads the safetensors file itself, no pickle)
    backbone.json          what a user needs to feed it: timm name, image size, channel handling,
                           normalisation, a timm `pretrained_cfg`, the pretraining config hash, run id

File names, the key prefix and the metadata keys are spelled here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from cmcgns.data.images import MEAN, STD
from cmcgns.errors import DataError
from cmcgns.io.atomic import atomic_open, write_json

EXPORT_VERSION = 1
TIMM_FILE = "backbone.safetensors"
MM_FILE = "backbone_mm.pth"
META_FILE = "backbone.json"
MM_KEY_PREFIX = "backbone.encoder."  # our mm backbone keeps the timm model as `encoder`
CHANNELS = "grayscale replicated to 3 channels"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class BackboneExport:
    timm_name: str
    image_size: int
    directory: Path | None = None  # None: random initialisation, no files
    in_chans: int = 3
    mean: tuple[float, ...] = (MEAN,) * 3
    std: tuple[float, ...] = (STD,) * 3
    config_hash: str | None = None
    run_id: str | None = None
    weights_sha256: str | None = None

    @classmethod
    def random_init(cls, timm_name: str, image_size: int) -> BackboneExport:
        return cls(timm_name, image_size)

    @property
    def timm_file(self) -> Path | None:
        return self.directory / TIMM_FILE if self.directory else None

    @property
    def mm_file(self) -> Path | None:
        return self.directory / MM_FILE if self.directory else None

    @property
    def weights_id(self) -> str:
        """The first 16 hex digits of the weights' sha256, or `random-init`."""
        return self.weights_sha256[:16] if self.weights_sha256 else "random-init"

    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's pretrained_cfg: `timm.create_model(name, pretrained=True, pretrained_cfg_overlay=cfg)`
        loads these weights with this input size and normalisation."""
        cfg: dict[str, Any] = {
            "input_size": (self.in_chans, self.image_size, self.image_size),
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "num_classes": 0,
        }
        if self.timm_file:
            cfg["file"] = str(self.timm_file.resolve())
        return cfg

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The timm weights, read from safetensors (no pickle)."""
        if not self.timm_file:
            raise DataError("a random-init backbone has no weights to load")
        from cmcgns.io.weights import read_safetensors

        return read_safetensors(self.timm_file)

    def to_json(self) -> dict[str, Any]:
        return {
            "export_version": EXPORT_VERSION,
            "timm_model": self.timm_name,
            "image_size": self.image_size,
            "in_chans": self.in_chans,
            "channels": CHANNELS,
            "mean": list(self.mean),
            "std": list(self.std),
            "pixel_range": "[0, 1] before normalisation",
            "pretrained_cfg": {k: v for k, v in self.pretrained_cfg().items() if k != "file"},
            "files": {"timm": TIMM_FILE, "mm": MM_FILE},
            "mm_key_prefix": MM_KEY_PREFIX,
            "config_hash": self.config_hash,
            "run_id": self.run_id,
            "weights_sha256": self.weights_sha256,
        }

    @classmethod
    def read(cls, directory: Path) -> BackboneExport:
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: missing; pass the export/ folder of a finished `cmcgns pretrain` run")
        try:
            meta = json.loads(meta_path.read_text())
            export = cls(
                meta["timm_model"],
                int(meta["image_size"]),
                directory,
                int(meta.get("in_chans", 3)),
                tuple(meta.get("mean", (MEAN,) * 3)),
                tuple(meta.get("std", (STD,) * 3)),
                meta.get("config_hash"),
                meta.get("run_id"),
                meta.get("weights_sha256"),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{meta_path}: not a cmcgns backbone description ({type(exc).__name__}: {exc}); re-export the run"
            ) from None
        timm_file = directory / TIMM_FILE
        if not timm_file.is_file():
            raise DataError(f"{timm_file}: missing beside {META_FILE}; re-export the run")
        actual = file_sha256(timm_file)
        if export.weights_sha256 is None:  # exports written before the hash was recorded
            export = dataclasses.replace(export, weights_sha256=actual)
        elif actual != export.weights_sha256:
            raise DataError(
                f"{timm_file}: does not match the sha256 in {META_FILE} (replaced or damaged after export); "
                f"re-export the run or copy the export folder again"
            )
        return export


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def stable_safetensors(state: dict[str, torch.Tensor], description: str) -> bytes:
    """Safetensors bytes that depend on the tensors and `description` alone: one metadata key
    (safetensors keeps metadata in a hash map whose order, hence the bytes, varies between calls)."""
    from safetensors.torch import save

    return save(state, metadata={"cmcgns": description})


def write_export(
    out_dir: Path,
    backbone: torch.nn.Module,
    timm_name: str,
    image_size: int,
    *,
    in_chans: int = 3,
    config_hash: str | None = None,
    run_id: str | None = None,
) -> BackboneExport:
    """Write the three files; equal weights give byte-identical files."""
    out_dir = Path(out_dir)
    state = cpu_state(backbone)
    description = json.dumps(
        {"timm_model": timm_name, "image_size": image_size, "export_version": EXPORT_VERSION}, sort_keys=True
    )
    data = stable_safetensors(state, description)
    with atomic_open(out_dir / TIMM_FILE, "wb") as handle:
        handle.write(data)
    with atomic_open(out_dir / MM_FILE, "wb") as handle:
        torch.save(
            {
                "state_dict": {MM_KEY_PREFIX + k: v for k, v in state.items()},
                "meta": {"timm_model": timm_name, "image_size": image_size},
            },
            handle,
        )
    export = BackboneExport(
        timm_name,
        image_size,
        out_dir,
        in_chans,
        config_hash=config_hash,
        run_id=run_id,
        weights_sha256=hashlib.sha256(data).hexdigest(),
    )
    write_json(out_dir / META_FILE, export.to_json())
    return export
