import pytest
import timm
import torch

from cmcgns.errors import ConfigError
from cmcgns.export import write_export
from cmcgns.models.image_encoder import ImageEncoder


def test_weights_from_another_image_size_interpolate_the_position_embedding_and_say_so(tmp_path, capsys):
    torch.manual_seed(0)
    small = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    export = write_export(tmp_path, small, "vit_tiny_patch16_224", 32)
    encoder = ImageEncoder("vit_tiny_patch16_224", 64, export.timm_file)
    assert "position embedding interpolated from 2x2 to 4x4 patches" in capsys.readouterr().err
    assert encoder.backbone.pos_embed.shape == (1, 1 + 16, 192)
    assert torch.equal(encoder.backbone.pos_embed[:, :1], small.pos_embed[:, :1])  # the class token's is kept
    assert torch.equal(encoder.backbone.blocks[0].attn.qkv.weight, small.blocks[0].attn.qkv.weight)


def test_a_shape_mismatch_that_cannot_be_interpolated_names_the_tensor(tmp_path):
    other = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, img_size=32)
    export = write_export(tmp_path, other, "vit_small_patch16_224", 32)
    with pytest.raises(
        ConfigError, match="backbone.safetensors: [a-z_.0-9]+ has shape \\(.*384.*\\), the model expects \\(.*192.*\\)"
    ):
        ImageEncoder("vit_tiny_patch16_224", 32, export.timm_file)


def test_weights_of_another_network_or_with_keys_missing_are_refused(tmp_path):
    import pytest
    import timm
    import torch
    from safetensors.torch import save_file

    from cmcgns.errors import ConfigError
    from cmcgns.models.image_encoder import ImageEncoder

    state = timm.create_model("resnet18", pretrained=False, num_classes=10).state_dict()
    whole = tmp_path / "whole.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(whole))
    ImageEncoder("resnet18", 64, whole)  # its classifier (fc.*) is not the encoder's: accepted
    half = tmp_path / "half.safetensors"
    save_file({k: v.contiguous() for k, v in list(state.items())[: len(state) // 2]}, str(half))
    with pytest.raises(ConfigError, match=r"half\.safetensors: not resnet18 weights: \d+ of \d+ weights missing"):
        ImageEncoder("resnet18", 64, half)
    junk = tmp_path / "junk.safetensors"
    save_file({**{k: v.contiguous() for k, v in state.items()}, "extra.w": torch.zeros(2)}, str(junk))
    with pytest.raises(ConfigError, match=r"1 keys it does not have \(e\.g\. extra\.w\)"):
        ImageEncoder("resnet18", 64, junk)
