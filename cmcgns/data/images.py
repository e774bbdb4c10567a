"""Image loading/normalisation for training: grayscale PNG from the cache -> 3-channel tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cmcgns.errors import DataError

MEAN, STD = 0.5, 0.25


def load_image(path: Path, size: int) -> torch.Tensor:
    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc}); run `cmcgns preprocess verify`") from None
    x = torch.from_numpy(pixels)[None, None]
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return to_model_input(x[0])


def to_model_input(gray: torch.Tensor) -> torch.Tensor:
    """[1, H, W] grayscale in [0, 1] -> the normalised 3-channel [3, H, W] tensor the encoders take."""
    return ((gray - MEAN) / STD).expand(3, -1, -1).contiguous()


def augment(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light, deterministic (given the generator) augmentation: shifted crop + contrast/brightness."""
    c, h, w = image.shape
    pad = max(1, h // 16)
    padded = F.pad(image[None], (pad, pad, pad, pad), mode="replicate")[0]
    dy, dx = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    out = padded[:, dy : dy + h, dx : dx + w]
    scale = 1.0 + 0.2 * (torch.rand((), generator=generator) - 0.5)
    shift = 0.2 * (torch.rand((), generator=generator) - 0.5)
    return out * scale + shift
