import hashlib

import numpy as np
import pytest

from cmcgns.data.formats import siim_rle
from cmcgns.data.reports.sectioning import report_body, split_sections
from cmcgns.data.reports.sentences import split_sentences
from cmcgns.data.synth.generate import generate
from cmcgns.data.synth.study import make_study
from cmcgns.errors import DataError


def _tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "SYNTHETIC.json":
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_generation_is_deterministic_across_worker_counts(tmp_path):
    generate("mimic-cxr", tmp_path / "a", 6, seed=3, image_size=48, workers=1)
    generate("mimic-cxr", tmp_path / "b", 6, seed=3, image_size=48, workers=2)
    generate("mimic-cxr", tmp_path / "c", 6, seed=4, image_size=48, workers=1)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b") != _tree_digest(tmp_path / "c")


def test_report_words_match_drawn_findings():
    for i in range(30):
        s = make_study(0, i, 64, force="effusion")
        eff = s.finding("effusion")
        text = (s.findings_text + " " + s.impression).lower()
        assert "effusion" in text or "pleural fluid" in text
        if eff.side != "bilateral":
            assert eff.side in text
        assert eff.mask is not None and eff.mask.any()
        side_half = eff.mask[:, :32] if eff.side == "right" else eff.mask[:, 32:]
        assert eff.side == "bilateral" or side_half.sum() == eff.mask.sum()  # patient's right is image left


def test_bad_generator_arguments():
    with pytest.raises(DataError, match="unknown synthetic dataset"):
        generate("nope", None, 1)


def test_siim_rle_round_trip_and_official_relative_format():
    mask = np.zeros((6, 5), dtype=np.uint8)
    mask[1:3, 1] = 1
    mask[4, 3] = 1
    rle = siim_rle.encode(mask)
    # column-major: column 1 rows 1-2 -> offset 7 len 2; column 3 row 4 -> abs 22, relative 22-9=13
    assert rle == "7 2 13 1"
    assert np.array_equal(siim_rle.decode(rle, 6, 5), mask)
    assert siim_rle.decode("-1", 6, 5).sum() == 0
    with pytest.raises(ValueError):
        siim_rle.decode("25 10", 6, 5)


def test_sections_and_sentences():
    text = " FINAL REPORT\n INDICATION: cough\n \n FINDINGS: Opacity measuring 1.5 cm. No effusion.\n IMPRESSION: 1. Pneumonia. 2. Dr. Lee notified."
    sections = split_sections(text)
    assert sections["findings"].startswith("Opacity") and sections["indication"] == "cough"
    sentences = [s for _, body in report_body(sections) for s in split_sentences(body)]
    assert sentences == ["Opacity measuring 1.5 cm.", "No effusion.", "Pneumonia.", "Dr. Lee notified."]


def test_synthetic_sentences_carry_their_meaning_outside_what_training_reads(synthetic_mimic):
    from cmcgns.data.manifest import read_manifest
    from cmcgns.data.pretrain_dataset import PairDataset

    rows = read_manifest(synthetic_mimic).split("train")
    sentences = [s for row in rows for s in row["sentences"]]
    assert sentences and all(s.get("meaning") for s in sentences)  # every generated sentence has its key
    for s in sentences:
        finding, side, polarity = s["meaning"].split(":")
        text = s["text"].lower()
        if polarity == "absent":
            assert side == "none"
        elif side in ("left", "right"):  # the location word the generator wrote matches the key's side
            assert side in text, (s["text"], s["meaning"])
        if polarity == "uncertain":
            assert any(h in text for h in ("possible", "likely", "questionable", "cannot exclude", "may represent"))
    item = PairDataset(synthetic_mimic, "train", 32, train=False)[0]
    assert all(isinstance(t, str) for t in item["sentences"]) and "meaning" not in item  # the model sees text only
