"""Chance levels and intervals of the pretraining summary, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from cmcgns.training.chance import format_judgement, hanley_mcneil_se, judge_summary, wilson_interval


def test_wilson_interval_by_hand():
    low, high = wilson_interval(0, 14)  # 0 of 14: upper bound z^2 / (n + z^2)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(1.959964**2 / (14 + 1.959964**2), abs=1e-6)
    low, high = wilson_interval(50, 100)
    assert (low + high) / 2 == pytest.approx(0.5) and high - low == pytest.approx(0.19234, abs=1e-4)


def test_hanley_mcneil_by_hand():
    # AUC 0.5 with 10 positives and 10 negatives: Q1 = Q2 = 1/3, variance (0.25 + 9/12 + 9/12) / 100
    assert hanley_mcneil_se(0.5, 10, 10) == pytest.approx(math.sqrt(0.0175), abs=1e-9)


def test_the_demo_numbers_that_never_left_chance_are_flagged_and_not_shown():
    summary = {
        "final_losses": {"global_loss": 3.15, "local_report_loss": 1.2},
        "eval": {"retrieval_r1": 0.0, "retrieval_r5": 0.21, "eval_pairs": 14, "linear_probe_auc": 0.93,
                 "probe_label_counts": [[60, 140], [80, 120]]},
    }  # fmt: skip
    losses = {"global_loss": (math.log(24), "log 24"), "local_report_loss": (math.log(100), "log 100")}
    judged = judge_summary(summary, losses)
    assert judged["global_loss"]["verdict"] == "at chance"  # 3.15 against log 24 = 3.18
    assert judged["local_report_loss"]["verdict"] == "better than chance"
    assert judged["retrieval_r1"]["verdict"] == "not distinguishable from chance"  # chance 1/14
    assert judged["retrieval_r5"]["chance"] == pytest.approx(5 / 14)
    assert judged["retrieval_r5"]["verdict"] == "not distinguishable from chance"
    assert judged["linear_probe_auc"]["verdict"] == "better than chance"
    lines = dict(line.split("  ", 1) for line in format_judgement(judged))
    assert "0.21" not in lines["retrieval_r5"] and "not distinguishable" in lines["retrieval_r5"]
    assert lines["global_loss"].strip().startswith("3.1500") and "AT CHANCE" in lines["global_loss"]
    assert "0.9300" in lines["linear_probe_auc"] and "<--" not in lines["linear_probe_auc"]


def test_a_perfect_probe_on_a_handful_of_images_is_not_certain():
    from cmcgns.training.chance import mean_auroc_interval

    low, high = mean_auroc_interval(1.0, [(3, 3), (2, 4)])  # Hanley-McNeil alone would give [1, 1]
    assert high == 1.0 and low < 0.5
    low, _ = mean_auroc_interval(0.9, [(200, 300)])
    assert 0.85 < low < 0.9  # a large set: the Hanley-McNeil width
