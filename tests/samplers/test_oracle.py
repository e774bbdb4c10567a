"""The oracle upper bound: in-batch InfoNCE without the negatives that truly mean the same."""

import csv
import math

import pytest
import torch
import torch.nn.functional as F

from cmcgns.data.pretrain_dataset import ReportCollator, meaning_id
from cmcgns.errors import ConfigError, DataError
from cmcgns.samplers.base import ContrastiveProblem
from cmcgns.samplers.oracle import OracleSampler, same_meaning_negatives
from cmcgns.training.pretrain import pretrain


def test_loss_drops_exactly_the_other_rows_that_mean_the_same():
    torch.manual_seed(0)
    anchors = F.normalize(torch.randn(5, 4), dim=1)
    candidates = F.normalize(torch.randn(5, 4), dim=1)
    # rows 0, 1 from report 0; 2, 3 from report 1; 4 from report 2. Rows 0, 1 and 3 mean the same;
    # row 4 records no meaning (-1), like row 2's partner nothing
    meanings = torch.tensor([7, 7, 5, 7, -1])
    problem = ContrastiveProblem(
        anchors, candidates, torch.tensor([0, 0, 1, 1, 2]), slice(0, 5), 0.5, 0, meanings=meanings
    )
    out = OracleSampler()(problem)
    logits = (anchors @ candidates.t() / 0.5).tolist()
    removed = {0: {1, 3}, 1: {0, 3}, 2: set(), 3: {0, 1}, 4: set()}  # within a report too: same meaning
    expected = 0.0
    for i in range(5):
        kept = [logits[i][j] for j in range(5) if j not in removed[i]]
        expected += math.log(sum(math.exp(v) for v in kept)) - logits[i][i]
    assert out.loss.item() == pytest.approx(expected / 5, rel=1e-5)
    assert out.stats["flagged_rate"].item() == pytest.approx(6 / 25)


def test_the_positive_is_never_removed_and_the_local_rows_are_respected():
    meanings = torch.tensor([3, 3, 3, 3])
    problem = ContrastiveProblem(torch.eye(4), torch.eye(4), torch.arange(4), slice(2, 4), 1.0, 0, meanings=meanings)
    flagged = same_meaning_negatives(problem)
    assert flagged.shape == (2, 4)
    assert flagged.tolist() == [[True, True, False, True], [True, True, True, False]]
    assert OracleSampler()(problem).loss.item() == pytest.approx(0.0, abs=1e-6)  # only the positive is left


def test_without_meanings_or_on_the_global_loss_it_refuses_in_one_line():
    plain = ContrastiveProblem(torch.eye(2), torch.eye(2), torch.arange(2), slice(0, 2), 1.0, 0)
    with pytest.raises(ConfigError, match="local report loss"):
        OracleSampler()(plain)
    symmetric = ContrastiveProblem(
        torch.eye(2), torch.eye(2), torch.arange(2), slice(0, 2), 1.0, 0, True, meanings=torch.tensor([1, 1])
    )
    with pytest.raises(ConfigError, match="sampler_on: local_report"):
        OracleSampler()(symmetric)


def test_the_collator_carries_meanings_only_when_asked_aligned_with_the_sentences(tiny_text_model):
    from cmcgns.models.text_encoder import load_tokenizer

    tokenizer = load_tokenizer(tiny_text_model, "model.text.path")
    items = [
        {
            "image": torch.zeros(1, 8, 8),
            "sentences": ["a.", "b.", "c."],
            "meanings": ["x", None, "y"],
            "index": 0,
            "labels": torch.zeros(1),
        },
        {"image": torch.zeros(1, 8, 8), "sentences": ["d."], "meanings": ["x"], "index": 1, "labels": torch.zeros(1)},
    ]
    assert "sentence_meanings" not in ReportCollator(tokenizer, 32, 2)(items)
    ids = ReportCollator(tokenizer, 32, 2, meanings=True)(items)["sentence_meanings"]
    assert ids.tolist() == [[meaning_id("x"), -1], [meaning_id("x"), -1]]  # 2 sentences kept; padding -1
    assert meaning_id("x") == meaning_id("x") >= 0 and meaning_id("x") != meaning_id("y")


def test_pretraining_with_the_oracle_flags_same_meaning_pairs(tiny_pretrain_config):
    cfg = tiny_pretrain_config(
        **{"sampler": {"name": "oracle"}, "head": {"name": "none"}, "stages": [{"name": "a", "steps": 3}]}
    )
    pretrain(cfg, progress=False)
    rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
    flagged = [float(r["sampler/flagged_rate"]) for r in rows]
    assert all(0 < f < 1 for f in flagged), flagged  # the synthetic reports repeat findings across studies
    assert all(math.isfinite(float(r["local_report_loss"])) for r in rows)


def test_pretraining_with_the_oracle_on_data_without_meanings_is_one_line(tiny_pretrain_config, tmp_path):
    import json
    import shutil

    oracle = {"sampler": {"name": "oracle"}, "head": {"name": "none"}, "stages": [{"name": "a", "steps": 2}]}
    cfg = tiny_pretrain_config(**oracle)
    data = tmp_path / "no-meanings"
    shutil.copytree(cfg.data.manifest, data)
    manifest = data / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:
        for sentence in row["sentences"]:
            sentence.pop("meaning", None)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_pretrain_config(**oracle, **{"data.manifest": str(data)})
    with pytest.raises(DataError, match="recorded meanings"):
        pretrain(cfg, progress=False)
