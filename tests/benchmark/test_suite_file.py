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


def test_an_option_for_a_task_not_selected_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="options given for task\\(s\\) not in tasks: covidx-cls"):
        SuiteFile(tasks=["rsna-cls"]).with_overrides(options={"covidx-cls": {"epochs": 1}})
    with pytest.raises(ConfigError, match="fractions must be in"):
        SuiteFile(tasks=["rsna-cls"]).with_overrides(fractions=[2.0])
