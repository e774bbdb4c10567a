"""Weight files are inputs from outside (issue 20, section 4): a truncated or absurd safetensors
file, or tensors of the wrong kind, are refused in one line naming the file and tensor."""

import struct

import pytest
import timm
import torch
from safetensors.torch import save_file

from cmcgns.errors import CmcgnsError, ConfigError, DataError
from cmcgns.io.weights import read_safetensors
from cmcgns.models.image_encoder import ImageEncoder


@pytest.fixture(scope="module")
def resnet_state():
    return timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict()


def test_a_truncated_or_absurd_safetensors_file_is_one_line(tmp_path, resnet_state):
    whole = tmp_path / "w.safetensors"
    save_file(resnet_state, str(whole))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    absurd = tmp_path / "absurd.safetensors"
    absurd.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 3)
    for path in (cut, absurd, junk):
        with pytest.raises(DataError, match=f"{path.name}: not a readable safetensors file") as caught:
            read_safetensors(path)
        assert "\n" not in str(caught.value)
    with pytest.raises(CmcgnsError, match="cut.safetensors: not a readable safetensors file"):
        ImageEncoder("resnet18", 64, cut)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_bool_weights_are_refused_naming_the_tensor(tmp_path, resnet_state, dtype):
    state = dict(resnet_state)
    state["conv1.weight"] = state["conv1.weight"].to(dtype)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    with pytest.raises(ConfigError, match=f"w.safetensors: conv1.weight is {dtype}, the model expects torch.float32"):
        ImageEncoder("resnet18", 64, path)


def test_half_precision_weights_load_widened(tmp_path, resnet_state):
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in resnet_state.items()}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    encoder = ImageEncoder("resnet18", 64, path)
    assert encoder.backbone.conv1.weight.dtype == torch.float32
    assert torch.equal(encoder.backbone.conv1.weight, state["conv1.weight"].float())


class _Payload:
    """Unpickling this would run a shell command (it must never be unpickled)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_payload_as_the_text_models_weights_is_one_line_and_never_runs(tmp_path):
    import shutil

    from cmcgns.models.text_encoder import TextEncoder, resolve_text_path

    folder = tmp_path / "text"
    shutil.copytree(resolve_text_path(None), folder)
    for weights in [*folder.glob("*.safetensors"), *folder.glob("*.bin")]:
        weights.unlink()
    marker = tmp_path / "ran"
    torch.save({"embeddings.word_embeddings.weight": _Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="cannot load the text model's weights .*refused without running them"):
        TextEncoder(folder)
    assert not marker.exists()


def test_a_damaged_or_hostile_feature_cache_is_recomputed_not_trusted(tmp_path, capsys):
    from cmcgns.downstream.classification import _read_feature_cache

    marker = tmp_path / "ran"
    hostile, wrong, good = tmp_path / "hostile.pt", tmp_path / "wrong.pt", tmp_path / "good.pt"
    torch.save(_Payload(marker), hostile)
    torch.save(torch.zeros(3, 5), wrong)
    torch.save(torch.ones(4, 8), good)
    assert _read_feature_cache(hostile, 4, 8) is None and not marker.exists()
    assert "hostile.pt: feature cache unreadable (not plain tensors); computing the features again" in (
        capsys.readouterr().err
    )
    assert _read_feature_cache(wrong, 4, 8) is None
    assert torch.equal(_read_feature_cache(good, 4, 8), torch.ones(4, 8))
