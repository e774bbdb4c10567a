import hashlib
import os
import stat

import pytest
import timm
import torch

from cmcgns import export as ex
from cmcgns.errors import DataError


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=0)


def test_equal_weights_give_byte_identical_exports(tmp_path, backbone):
    a = ex.write_export(tmp_path / "a", backbone, "resnet18", 64, config_hash="abc", run_id="run")
    b = ex.write_export(tmp_path / "b", backbone, "resnet18", 64, config_hash="abc", run_id="run")
    for name in (ex.TIMM_FILE, ex.MM_FILE, ex.META_FILE):
        assert _digest(tmp_path / "a" / name) == _digest(tmp_path / "b" / name), name
    assert (
        a.weights_sha256 == _digest(tmp_path / "a" / ex.TIMM_FILE) == b.weights_sha256
        and a.weights_id == a.weights_sha256[:16]
    )
    with torch.no_grad():
        next(backbone.parameters()).add_(1.0)
    c = ex.write_export(tmp_path / "c", backbone, "resnet18", 64)
    assert c.weights_sha256 != a.weights_sha256


def test_export_describes_itself_and_timm_loads_it_with_the_right_input(tmp_path, backbone):
    written = ex.write_export(tmp_path, backbone, "resnet18", 96, config_hash="abc", run_id="r1")
    read = ex.BackboneExport.read(tmp_path)
    assert read == written
    meta = read.to_json()
    assert meta["timm_model"] == "resnet18" and meta["image_size"] == 96 and meta["channels"].startswith("grayscale")
    assert (
        meta["config_hash"] == "abc"
        and meta["run_id"] == "r1"
        and meta["mean"] == [0.5] * 3
        and meta["std"] == [0.25] * 3
    )
    model = timm.create_model("resnet18", pretrained=True, num_classes=0, pretrained_cfg_overlay=read.pretrained_cfg())
    for key, value in backbone.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    config = timm.data.resolve_data_config({}, model=model)
    assert (
        config["input_size"] == (3, 96, 96)
        and config["mean"] == (0.5, 0.5, 0.5)
        and config["std"] == (0.25, 0.25, 0.25)
    )


def test_files_follow_the_users_umask(tmp_path, backbone):
    old = os.umask(0o022)
    try:
        ex.write_export(tmp_path, backbone, "resnet18", 64)
    finally:
        os.umask(old)
    for name in (ex.TIMM_FILE, ex.MM_FILE, ex.META_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_reading_a_folder_that_is_not_an_export_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"backbone.json: missing; pass the export/ folder"):
        ex.BackboneExport.read(tmp_path)
    (tmp_path / ex.META_FILE).write_text("{}")
    with pytest.raises(DataError, match="not a cmcgns backbone description"):
        ex.BackboneExport.read(tmp_path)


def test_weights_swapped_under_the_description_are_refused(tmp_path, backbone):
    ex.write_export(tmp_path / "a", backbone, "resnet18", 64)
    other = timm.create_model("resnet18", pretrained=False, num_classes=0)
    ex.write_export(tmp_path / "b", other, "resnet18", 64)
    (tmp_path / "a" / ex.TIMM_FILE).write_bytes((tmp_path / "b" / ex.TIMM_FILE).read_bytes())
    with pytest.raises(DataError, match=r"backbone\.safetensors: does not match the sha256 in backbone\.json"):
        ex.BackboneExport.read(tmp_path / "a")
