"""What `cmcgns benchmark` shows: the per-run line, the aligned table, and the summary figure
(bounded metrics on [0, 1], a loss never on the Dice axis, the random-init baseline beside)."""

from __future__ import annotations

from cmcgns.benchmark.tables import aligned_table, result_line, summary_figure


def _entry(task, fraction, metric, mean, std=0.01, n=3):
    return {"task": task, "fraction": fraction, "metric": metric, "mean": mean, "std": std, "n": n}


def test_a_run_is_one_line_of_scores_without_bookkeeping():
    row = {
        "task": "siim-seg",
        "fraction": 1.0,
        "seed": 2,
        "metrics": {"dice": 0.60526315, "loss": 5.25, "train_rows": 165.0},
    }
    assert result_line(row) == "siim-seg f=1 seed 2: dice 0.6053  loss 5.2500"


def test_the_console_table_is_aligned():
    lines = aligned_table(
        [_entry("rsna-cls", 0.01, "auroc", 0.7), _entry("siim-seg", 1.0, "dice", 0.61234)]
    ).splitlines()
    assert lines[0].split() == ["task", "fraction", "metric", "mean", "±", "std", "95", "%", "CI", "n"]
    assert lines[1].index("auroc") == lines[2].index("dice") == lines[0].index("metric")
    assert "0.6123 ± 0.0100" in lines[2]


def test_the_figure_keeps_a_loss_off_the_dice_axis_and_shows_the_random_init_baseline():
    import matplotlib.pyplot as plt

    summary = [_entry("siim-seg", f, m, v) for f in (0.1, 1.0) for m, v in (("dice", 0.6), ("loss", 5.3))]
    baseline = [_entry("siim-seg", f, m, v) for f in (0.1, 1.0) for m, v in (("dice", 0.3), ("loss", 6.1))]
    fig = summary_figure(summary, baseline=baseline)
    left, right = fig.axes[0], fig.axes[-1]
    assert left is not right and left.get_ylim() == (0.0, 1.0)
    labels = lambda ax: {line.get_label() for line in ax.containers}  # noqa: E731
    assert labels(left) == {"dice ± std (n=3)", "dice random init"}
    assert labels(right) == {"loss ± std (n=3)", "loss random init"}
    assert right.get_ylabel() == "loss" and left.get_ylabel() == "dice"
    plt.close(fig)
