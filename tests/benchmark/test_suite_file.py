import pytest

from cmcgns.benchmark.suite_file import SuiteFile
from cmcgns.errors import ConfigError


def test_command_line_values_replace_lists_and_merge_options_per_task():
    base = SuiteFile(
        tasks=["rsna-cls", "siim-seg"],
        fractions=[0.1],
        seeds=[0, 1],
        options={"rsna-cls": {"epochs": 3, "lr": 0.1}, "siim-seg": {"iters": 4}},
    )
    out = base.with_overrides(tasks=["rsna-cls"], seeds=[2], options={"rsna-cls": {"epochs": 5}})
    assert out.tasks == ["rsna-cls"] and out.fractions == [0.1] and out.seeds == [2]
    assert out.options == {"rsna-cls": {"epochs": 5, "lr": 0.1}}  # merged; siim-seg left with its task
    assert base.options["rsna-cls"]["epochs"] == 3  # the file's suite is not mutated


def test_task_fractions_override_the_suite_fractions_until_the_command_line_gives_some():
    base = SuiteFile(tasks=["chexpert-cls", "rsna-det"], fractions=[1.0], task_fractions={"chexpert-cls": [0.01]})
    assert base.fractions_for("chexpert-cls") == [0.01] and base.fractions_for("rsna-det") == [1.0]
    assert base.with_overrides(seeds=[3]).fractions_for("chexpert-cls") == [0.01]
    assert base.with_overrides(fractions=[0.1]).fractions_for("chexpert-cls") == [0.1]
    assert base.with_overrides(tasks=["rsna-det"]).task_fractions == {}
    with pytest.raises(ValueError, match="task_fractions given for task\\(s\\) not in tasks: covidx-cls"):
        SuiteFile(tasks=["rsna-cls"], task_fractions={"covidx-cls": [0.1]})
    with pytest.raises(ValueError, match="rsna-cls: fractions must be"):
        SuiteFile(tasks=["rsna-cls"], task_fractions={"rsna-cls": [0.0]})


def test_an_option_for_a_task_not_selected_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="options given for task\\(s\\) not in tasks: covidx-cls"):
        SuiteFile(tasks=["rsna-cls"]).with_overrides(options={"covidx-cls": {"epochs": 1}})
    with pytest.raises(ConfigError, match="fractions must be in"):
        SuiteFile(tasks=["rsna-cls"]).with_overrides(fractions=[2.0])


def test_summary_plot_has_a_panel_per_task_and_names_the_backbone(tmp_path):
    from PIL import Image

    from cmcgns.benchmark.tables import write_tables

    summary = [
        {"task": t, "fraction": f, "metric": "auroc", "mean": 0.7, "std": 0.5, "n": 3}
        for t in ("rsna-cls", "covidx-cls")
        for f in (0.01, 0.1, 1.0)
    ]
    paths = write_tables(summary, tmp_path, title="backbone abc")
    with Image.open(paths["plot"]) as image:
        assert image.format == "PNG" and image.size == (840, 320)  # two 4.2 x 3.2 inch panels at 100 dpi


def test_the_gate_fails_a_backbone_that_does_not_beat_random_init_by_the_margin():
    from cmcgns.benchmark.gate import Expectation, check

    expected = [Expectation(task="covidx-cls", fraction=1.0, metric="auroc", beats="random-init", margin=0.05)]
    ours = [{"task": "covidx-cls", "fraction": 1.0, "metric": "auroc", "mean": 0.80, "std": 0.01, "n": 3}]
    random_init = [dict(ours[0], mean=0.72)]
    assert check(ours, expected, {"random-init": random_init}) == []
    broken = [dict(ours[0], mean=0.74)]
    assert check(broken, expected, {"random-init": random_init}) == [
        "covidx-cls @1 auroc: 0.7400 leads random-init (0.7200) by +0.0200, less than the required 0.0500"
    ]
    assert "no random-init baseline" in check(ours, expected, None)[0]


def test_the_gate_compares_each_beats_entry_with_its_own_baseline():
    from cmcgns.benchmark.gate import Expectation, check, needs_baseline

    expected = [
        Expectation(task="rsna-det", fraction=1.0, metric="map_40_75", beats="untrained-head", margin=0.05),
        Expectation(task="covidx-cls", fraction=1.0, metric="acc", beats="random-init", margin=0.0),
    ]
    assert needs_baseline(expected, "untrained-head") == ["rsna-det"] and needs_baseline(expected) == ["covidx-cls"]
    ours = [
        {"task": "rsna-det", "fraction": 1.0, "metric": "map_40_75", "mean": 0.30, "std": 0.0, "n": 2},
        {"task": "covidx-cls", "fraction": 1.0, "metric": "acc", "mean": 0.60, "std": 0.0, "n": 2},
    ]
    untrained = [dict(ours[0], mean=0.28)]  # the trained head barely moved
    random_init = [dict(ours[1], mean=0.50)]
    failures = check(ours, expected, {"untrained-head": untrained, "random-init": random_init})
    assert failures == [
        "rsna-det @1 map_40_75: 0.3000 leads untrained-head (0.2800) by +0.0200, less than the required 0.0500"
    ]
    assert check(ours, expected, {"random-init": random_init}) == [
        "rsna-det @1 map_40_75: no untrained-head baseline to compare with"
    ]


def test_a_lower_is_better_entry_asks_for_a_value_below_the_baseline():
    from cmcgns.benchmark.gate import Expectation, check

    expected = [
        Expectation(task="siim-seg", fraction=1.0, metric="loss", beats="untrained-head", better="lower", margin=0.5)
    ]
    ours = [{"task": "siim-seg", "fraction": 1.0, "metric": "loss", "mean": 5.0, "std": 0.0, "n": 2}]
    assert check(ours, expected, {"untrained-head": [dict(ours[0], mean=6.0)]}) == []
    assert check(ours, expected, {"untrained-head": [dict(ours[0], mean=5.2)]}) == [
        "siim-seg @1 loss: 5.0000 leads untrained-head (5.2000) by +0.2000 (lower is better), less than the required 0.5000"
    ]


def test_a_seed_task_or_fraction_given_twice_is_refused():
    import pytest

    from cmcgns.benchmark.suite_file import SuiteFile
    from cmcgns.errors import ConfigError

    base = SuiteFile(tasks=["rsna-cls"])
    with pytest.raises(ConfigError, match=r"seeds: .*0 given more than once"):
        base.with_overrides(seeds=[0, 0, 1])
    with pytest.raises(ConfigError, match=r"fractions: .*0\.1 given more than once"):
        base.with_overrides(fractions=[0.1, 0.1])
    with pytest.raises(ConfigError, match=r"tasks: .*rsna-cls given more than once"):
        base.with_overrides(tasks=["rsna-cls", "rsna-cls"])
