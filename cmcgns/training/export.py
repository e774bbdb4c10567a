"""Backbone-only exports: timm-compatible safetensors and an OpenMMLab checkpoint whose keys
carry the ``backbone.`` prefix (load with init_cfg=dict(type='Pretrained', prefix='backbone.'))."""

from __future__ import annotations

from pathlib import Path

import torch

from cmcgns.io.atomic import atomic_open, write_json

TIMM_FILE = "backbone.safetensors"
MM_FILE = "backbone_mm.pth"
MM_KEY_PREFIX = "backbone.encoder."  # our mm backbone keeps the timm model as `encoder`


def export_backbone(backbone: torch.nn.Module, name: str, image_size: int, out_dir: Path) -> dict[str, str]:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    tmp = out_dir / (TIMM_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"timm_model": name, "image_size": str(image_size)})
    tmp.replace(out_dir / TIMM_FILE)
    with atomic_open(out_dir / MM_FILE, "wb") as handle:
        torch.save({"state_dict": {MM_KEY_PREFIX + k: v for k, v in state.items()},
                    "meta": {"timm_model": name, "image_size": image_size}}, handle)
    write_json(out_dir / "backbone.json", {"timm_model": name, "image_size": image_size, "timm_file": TIMM_FILE, "mm_file": MM_FILE})
    return {"timm": str(out_dir / TIMM_FILE), "mm": str(out_dir / MM_FILE)}
