"""The whole model as a product: export, verified loading, and the calls users make."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import cmcgns
from cmcgns.data.images import load_image
from cmcgns.data.manifest import read_manifest
from cmcgns.errors import DataError
from cmcgns.joint import export as jx
from cmcgns.joint.model import ImagePreprocess
from cmcgns.models.text_encoder import load_tokenizer
from cmcgns.training import checkpoint as ckpt
from cmcgns.training.pretrain import build_collator
from cmcgns.training.task import build_task


def _batch(config, manifest_dir, n=6):
    rows = read_manifest(manifest_dir).split("test", "val")[:n]
    images = torch.stack([load_image(manifest_dir / r["image"], config.data.image_size) for r in rows])
    sentences = [[s["text"] for s in sorted(r["sentences"], key=lambda s: s["index"])] for r in rows]
    return rows, images, sentences


def test_the_loaded_model_gives_the_trainers_embeddings_exactly(finished_run, synthetic_mimic):
    config = finished_run
    trainer = build_task(config)  # the trainer's model, as its last checkpoint holds it
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(config.run_dir)[-1])
    trainer.load_state_dict(state["model"])
    trainer.eval()
    _, images, sentences = _batch(config, synthetic_mimic)
    batch = build_collator(config).encode_sentences(sentences)
    with torch.no_grad():
        want_image = trainer.model.embed_images(images)
        want_text = trainer.model.embed_reports(batch)

    model, preprocess, tokenizer = cmcgns.load_model(config.run_dir / "model")
    assert torch.equal(model.encode_image(images), want_image)
    assert torch.equal(model.encode_text(batch), want_text)
    assert torch.allclose(want_image.norm(dim=1), torch.ones(len(images)), atol=1e-5)
    # the same through the run folder and through text given as sentences joined into a report
    again, _, _ = cmcgns.load_model(config.run_dir)
    assert torch.equal(again.encode_text([" ".join(s) for s in sentences]), want_text)


def test_tokenizer_builds_reports_as_pretraining_did(finished_run, synthetic_mimic):
    config = finished_run
    _, _, tokenizer = cmcgns.load_model(config.run_dir / "model")
    _, _, sentences = _batch(config, synthetic_mimic)
    report = (
        "INDICATION: Cough.\nFINDINGS: " + " ".join(sentences[0][:2]) + "\nIMPRESSION: " + " ".join(sentences[0][2:])
    )
    assert tokenizer.sentences(report) == sentences[0]  # the indication is left out, as in pretraining
    expected = build_collator(config).encode_sentences(sentences[:1])
    got = tokenizer([report])
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    with pytest.raises(DataError, match="no sentence"):
        tokenizer(["   "])


def test_preprocess_takes_paths_pil_images_and_arrays_as_the_loader_does(finished_run, synthetic_mimic, tmp_path):
    rows = read_manifest(synthetic_mimic).rows[:2]
    path = synthetic_mimic / rows[0]["image"]
    size = Image.open(path).size[0]
    preprocess = ImagePreprocess(size)
    assert torch.equal(preprocess(path), load_image(path, size))  # a cache image at the model's size: identical
    with Image.open(path) as im:
        assert torch.equal(preprocess(im), preprocess(str(path)))
        assert torch.equal(preprocess(np.asarray(im.convert("RGB"))), preprocess(path))
    big = tmp_path / "big.png"
    Image.open(path).resize((size * 3, size * 2)).save(big)
    assert preprocess(big).shape == (3, size, size)
    with pytest.raises(DataError, match="does not exist"):
        preprocess(tmp_path / "absent.png")


def test_equal_weights_give_identical_files_and_changed_weights_do_not(tiny_pretrain_config, tmp_path):
    config = tiny_pretrain_config(**{"head.name": "none", "stages": [{"name": "a", "steps": 1}]})
    task = build_task(config)
    tokenizer = load_tokenizer(config.model.text.path)
    a = jx.export_trained_model(tmp_path / "a", task.model, config, tokenizer, 10.0, "run")
    b = jx.export_trained_model(tmp_path / "b", task.model, config, tokenizer, 10.0, "run")
    assert a.manifest["files"] == b.manifest["files"]
    assert (tmp_path / "a" / jx.MANIFEST_FILE).read_bytes() == (tmp_path / "b" / jx.MANIFEST_FILE).read_bytes()
    with torch.no_grad():
        next(task.model.parameters()).add_(1.0)
    c = jx.export_trained_model(tmp_path / "a", task.model, config, tokenizer, 10.0, "run")  # replaces a
    assert c.weights_sha256 != b.weights_sha256 and not list(tmp_path.glob(".a.*"))


def test_a_folder_that_does_not_match_its_manifest_is_refused_naming_the_file(finished_run, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(finished_run.run_dir / "model", folder)
    jx.ModelFolder.read(folder)
    config_json = folder / "text" / "config.json"
    config_json.write_text(config_json.read_text() + " ")
    with pytest.raises(DataError, match=r"text/config\.json: does not match its sha256"):
        cmcgns.load_model(folder)
    shutil.copy(finished_run.run_dir / "model" / "text" / "config.json", config_json)
    (folder / "text" / "tokenizer.json").unlink()
    with pytest.raises(DataError, match=r"tokenizer\.json: listed in model\.json but missing"):
        cmcgns.load_model(folder)
    with pytest.raises(DataError, match=r"image backbone only"):
        cmcgns.load_model(finished_run.run_dir / "export")
    manifest = json.loads((finished_run.run_dir / "model" / "model.json").read_text())
    assert manifest["image"]["image_size"] == 32 and manifest["text"]["max_sentences"] == 4
    assert manifest["files"][jx.WEIGHTS_FILE] == jx.ModelFolder.read(finished_run.run_dir).weights_sha256


def test_random_init_of_the_same_architecture_is_seeded(finished_run):
    from cmcgns.joint.model import build_from_folder

    folder = jx.ModelFolder.read(finished_run.run_dir)
    a, b = build_from_folder(folder, weights=False, seed=3), build_from_folder(folder, weights=False, seed=3)
    trained = build_from_folder(folder)
    x = torch.zeros(2, 3, 32, 32)
    assert torch.equal(a.encode_image(x), b.encode_image(x))
    assert not torch.equal(a.encode_image(x), trained.encode_image(x))
