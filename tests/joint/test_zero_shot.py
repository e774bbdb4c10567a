"""Zero-shot scoring and retrieval metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmcgns.errors import ConfigError
from cmcgns.joint.retrieval import retrieval_scores, true_ranks
from cmcgns.joint.zero_shot import binary_scores, class_embeddings, load_prompts, multiclass_scores, similarities


def test_a_hand_made_three_class_case_gives_the_hand_computed_accuracy():
    axes = {"a": [1.0, 0, 0], "b": [0, 1.0, 0], "c": [0, 0, 1.0], "a2": [1.0, 0.2, 0]}

    def encode_text(texts):
        return torch.nn.functional.normalize(torch.tensor([axes[t] for t in texts]), dim=1)

    classes = class_embeddings(encode_text, {"A": ["a", "a2"], "B": ["b"], "C": ["c"]})
    assert torch.allclose(classes.norm(dim=1), torch.ones(3))
    images = torch.nn.functional.normalize(
        torch.tensor([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0, 0.3, 0.9], [0.2, 0.9, 0], [0.1, 0.1, 0.8], [0, 0.1, 0.9]]),
        dim=1,
    )
    truth = np.array([0, 1, 2, 0, 2, 1])  # rows 3 and 5 are wrong: 4 of 6 right
    scores = similarities(images, classes)
    got = multiclass_scores(truth, scores)
    assert got["acc"] == pytest.approx(4 / 6)
    # per class F1: A (tp1 fp0 fn1) 2/3, B (tp1 fp1 fn1) 1/2, C (tp2 fp1 fn0) 4/5
    assert got["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)


def test_binary_zero_shot_scores_the_margin_of_the_positive_prompt():
    scores = np.array([[0.9, 0.1], [0.2, 0.6], [0.5, 0.4], [0.3, 0.35]])
    truth = np.array([0, 1, 1, 0])  # positive class first
    got = binary_scores(truth, scores)
    assert got["acc"] == pytest.approx(0.5)  # rows 0 and 1 right
    assert got["f1"] == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    # margins: pos 0.8, -0.05; neg -0.4, 0.1 -> pairs won 1 + 1 + 0 + 1 of 4
    assert got["auroc"] == pytest.approx(0.75)


def test_recall_and_median_rank_on_a_crafted_similarity_matrix():
    sims = np.array(
        [
            [0.9, 0.1, 0.2, 0.0],  # image 0: its report first
            [0.8, 0.5, 0.1, 0.0],  # image 1: second
            [0.3, 0.4, 0.1, 0.9],  # image 2: fourth
            [0.1, 0.2, 0.3, 0.7],  # image 3: first
        ]
    )
    assert true_ranks(sims).tolist() == [1, 2, 4, 1]
    got = retrieval_scores(sims, ks=(1, 2))
    assert got["i2t_r1"] == 0.5 and got["i2t_r2"] == 0.75 and got["i2t_median_rank"] == 1.5
    # report -> image: columns; report 0: 0.9 best; 1: 0.5 best; 2: 0.1 fourth (ties count against it); 3: 0.7 second
    assert true_ranks(sims.T).tolist() == [1, 1, 4, 2]
    assert got["t2i_r1"] == 0.5 and got["chance_r1"] == 0.25 and got["candidates"] == 4


def test_a_model_that_scores_every_pair_alike_ranks_each_true_item_last():
    got = retrieval_scores(np.ones((5, 5)))
    assert got["i2t_r1"] == 0.0 and got["i2t_median_rank"] == 5.0


def test_prompt_sets_packaged_and_replaced(tmp_path):
    five = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    packaged = load_prompts("chexpert-zeroshot", five)
    assert list(packaged) == list(five) and all(packaged.values())
    assert set(load_prompts("rsna-zeroshot", ("Pneumonia", "Normal"))) == {"Pneumonia", "Normal"}
    flat = tmp_path / "mine.yaml"
    flat.write_text("Pneumonia: [pneumonia]\nNormal: [clear lungs]\n")
    assert load_prompts("rsna-zeroshot", ("Pneumonia", "Normal"), flat) == {
        "Pneumonia": ["pneumonia"],
        "Normal": ["clear lungs"],
    }
    flat.write_text("Pneumonia: [pneumonia]\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: no prompts for Normal"):
        load_prompts("rsna-zeroshot", ("Pneumonia", "Normal"), flat)
    flat.write_text("Pneumonia: []\nNormal: [x]\n")
    with pytest.raises(ConfigError, match="Pneumonia: give a non-empty list"):
        load_prompts("rsna-zeroshot", ("Pneumonia", "Normal"), flat)
