"""timm image backbone returning a global embedding and a grid of local (patch) features."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cmcgns.errors import ConfigError


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: weights file does not exist")
    if path.suffix == ".safetensors":
        from cmcgns.io.weights import read_safetensors

        state = read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle that is not plain tensors is refused, in one line
            reason = str(exc).strip().splitlines()[0][:160]
            raise ConfigError(
                f"{path}: not a plain weights file ({type(exc).__name__}: {reason}); give a safetensors file "
                f"or a torch state dict of tensors"
            ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def fit_position_embedding(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """Weights exported at one image size used at another: a ViT's absolute position embedding is
    resampled (bicubic, timm's resample_abs_pos_embed) to the model's grid, and this is said on
    stderr; any other shape mismatch is an error naming the tensor."""
    import sys

    target = model.state_dict()
    out = dict(state)
    pos = out.get("pos_embed")
    if pos is not None and "pos_embed" in target and pos.shape != target["pos_embed"].shape:
        from timm.layers import resample_abs_pos_embed

        prefix = int(getattr(model, "num_prefix_tokens", 1))
        grid = tuple(model.patch_embed.grid_size)
        old = int(round((pos.shape[1] - prefix) ** 0.5))
        out["pos_embed"] = resample_abs_pos_embed(
            pos, new_size=list(grid), old_size=[old, old], num_prefix_tokens=prefix
        )
        print(
            f"{source}: position embedding interpolated from {old}x{old} to {grid[0]}x{grid[1]} patches "
            f"(weights made at another image size)",
            file=sys.stderr,
            flush=True,
        )
    from cmcgns.io.weights import check_tensors

    check_tensors(
        out, target, source, ConfigError
    )  # shapes and dtypes, one line naming the first tensor that does not fit
    return out


# keys of a classifier a pretrained checkpoint may carry (the encoder is built without one)
CLASSIFIER_PREFIXES = ("head.", "head_dist.", "fc.", "classifier.", "last_linear.", "pre_logits.")


class ImageEncoder(nn.Module):
    def __init__(self, name: str, image_size: int, pretrained_path: Path | None = None, in_chans: int = 3) -> None:
        super().__init__()
        import timm

        kwargs = {"pretrained": False, "num_classes": 0, "in_chans": in_chans}
        if name.startswith(("vit", "deit")):
            kwargs["img_size"] = image_size
        try:
            self.backbone = timm.create_model(name, **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"image encoder {name!r}: {exc}") from None
        if pretrained_path:
            state = {k.removeprefix("backbone."): v for k, v in load_state_file(pretrained_path).items()}
            state = fit_position_embedding(state, self.backbone, str(pretrained_path))
            missing, unexpected = self.backbone.load_state_dict(state, strict=False)
            unexpected = [k for k in unexpected if not k.startswith(CLASSIFIER_PREFIXES)]  # a pretrained head
            if missing or unexpected:
                what = (
                    f"{len(missing)} of {len(self.backbone.state_dict())} weights missing (e.g. {missing[0]})"
                    if missing
                    else ""
                )
                if unexpected:
                    what += ("; " if what else "") + f"{len(unexpected)} keys it does not have (e.g. {unexpected[0]})"
                raise ConfigError(
                    f"{pretrained_path}: not {name} weights: {what}; the rest would train from random init"
                )
        self.name = name
        self.in_chans = in_chans
        self.is_vit = hasattr(self.backbone, "patch_embed") and hasattr(self.backbone, "blocks")
        self.dim = int(self.backbone.num_features)
        if self.is_vit:
            self.patch_size = int(self.backbone.patch_embed.patch_size[0])
            self.num_prefix_tokens = int(getattr(self.backbone, "num_prefix_tokens", 1))
        else:
            self.patch_size = int(self.backbone.feature_info[-1]["reduction"])
            self.num_prefix_tokens = 0
        if image_size % self.patch_size:
            raise ConfigError(f"image size {image_size} is not a multiple of {name}'s patch size {self.patch_size}")
        self.grid = image_size // self.patch_size

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, C, H, W] -> (global [B, D], patches [B, N, D])."""
        feats = self.backbone.forward_features(images)
        if self.is_vit:
            patches = feats[:, self.num_prefix_tokens :]
            pooled = feats[:, 0] if self.num_prefix_tokens else patches.mean(1)
            return pooled, patches
        patches = feats.flatten(2).transpose(1, 2)
        return patches.mean(1), patches
