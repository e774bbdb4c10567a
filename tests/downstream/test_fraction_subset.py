import pytest

from cmcgns.downstream.base import fraction_subset
from cmcgns.errors import DataError


def _rows(positives: int, negatives: int) -> list[dict]:
    return [{"id": f"p{i}", "labels": {"y": 1.0}} for i in range(positives)] + [
        {"id": f"n{i}", "labels": {"y": 0.0}} for i in range(negatives)
    ]


def test_fraction_is_stratified_so_a_rare_class_survives():
    rows = _rows(10, 190)
    subset = fraction_subset(rows, 0.01, seed=0, label_key="y")
    labels = [r["labels"]["y"] for r in subset]
    assert labels.count(1.0) == 1 and labels.count(0.0) == 2  # round(1% of each class), at least one of each
    tenth = fraction_subset(rows, 0.1, seed=0, label_key="y")
    assert [r["labels"]["y"] for r in tenth].count(1.0) == 1 and len(tenth) == 20


def test_fraction_is_deterministic_per_seed_and_differs_across_seeds():
    rows = _rows(50, 50)
    a, b = fraction_subset(rows, 0.1, 0, "y"), fraction_subset(rows, 0.1, 0, "y")
    c = fraction_subset(rows, 0.1, 1, "y")
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["id"] for r in a] != [r["id"] for r in c]
    assert fraction_subset(rows, 1.0, 0, "y") == rows


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_a_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(DataError, match="must be in"):
        fraction_subset(_rows(2, 2), fraction, 0)
