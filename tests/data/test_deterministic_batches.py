import torch

from cmcgns.data.pretrain_dataset import DeterministicBatches


def test_batches_are_a_pure_function_of_the_micro_step_with_the_permutation_cached():
    a = DeterministicBatches(100, 8, seed=3, rank=0, world=2, start=0, total=40)
    in_order = [a.batch_at(m) for m in range(40)]
    b = DeterministicBatches(100, 8, seed=3, rank=0, world=2, start=0, total=40)
    shuffled = {m: b.batch_at(m) for m in (17, 3, 39, 0, 17, 25)}  # jumping between epochs recomputes the right one
    assert all(shuffled[m] == in_order[m] for m in shuffled)
    resumed = DeterministicBatches(100, 8, seed=3, rank=0, world=2, start=13, total=40)
    assert list(resumed) == in_order[13:]
    other_rank = DeterministicBatches(100, 8, seed=3, rank=1, world=2, start=0, total=6)
    for m, batch in enumerate(other_rank):  # ranks never share a row within an epoch
        assert not set(batch) & set(in_order[m])


def test_shuffled_pairing_gives_every_image_another_studys_report(synthetic_mimic):
    from cmcgns.data.pretrain_dataset import PairDataset

    paired = PairDataset(synthetic_mimic, "train", 32, train=False)
    shuffled = PairDataset(synthetic_mimic, "train", 32, train=False, pairing="shuffled")
    assert sorted(shuffled.report_of) == list(range(len(paired)))  # every report used once
    assert all(i != j for i, j in enumerate(shuffled.report_of))  # never its own
    k = 3
    assert torch.equal(shuffled[k]["image"], paired[k]["image"])
    assert shuffled[k]["sentences"] == paired[shuffled.report_of[k]]["sentences"]
