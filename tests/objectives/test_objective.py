import math

import torch

from cmcgns.config.schema import ObjectiveConfig
from cmcgns.models.features import Features
from cmcgns.objectives.cmcgns import CMCGNSObjective, total_loss
from cmcgns.samplers.base import NegativeSampler, SamplerOutput
from cmcgns.samplers.in_batch import InBatchSampler, info_nce


class Recording(NegativeSampler):
    def __init__(self):
        super().__init__()
        self.problems = []

    def forward(self, problem):
        self.problems.append(problem)
        return SamplerOutput(info_nce(problem), {"seen": torch.tensor(1.0)})


def features(b=3, m=4, e=8, p=4, seed=0, mask=None):
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool) if mask is None else mask
    sentences = torch.randn(b, m, e, generator=g)
    i2r = torch.randn(b, m, e, generator=g) * mask.unsqueeze(-1)
    return Features(
        torch.nn.functional.normalize(torch.randn(b, e, generator=g), dim=1),
        torch.nn.functional.normalize(torch.randn(b, e, generator=g), dim=1),
        torch.randn(b, p, e, generator=g),
        sentences,
        mask,
        torch.randn(b, p, e, generator=g),
        i2r,
        (2, 2),
    )


def test_local_report_problem_holds_every_sentence_of_the_batch_grouped_by_report():
    sampler = Recording()
    objective = CMCGNSObjective(ObjectiveConfig(), 8, sampler, None)
    feats = features()
    out = objective(feats, step=0)
    (problem,) = sampler.problems  # the sampler acts on the local report loss only (paper)
    assert problem.anchors.shape == (7, 8) and problem.local_rows == slice(0, 7)
    assert problem.groups.tolist() == [0, 0, 1, 1, 1, 1, 2]
    expected = torch.nn.functional.normalize(feats.sentences[1, 2], dim=0)
    assert torch.allclose(problem.anchors[4], expected)
    assert torch.allclose(problem.candidates[4], torch.nn.functional.normalize(feats.image_to_report[1, 2], dim=0))
    assert problem.temperature == 1.0 and not problem.symmetric
    assert set(out) >= {"global_loss", "local_image_loss", "local_report_loss", "sampler/seen", "temperature"}
    assert torch.allclose(total_loss(out), out["global_loss"] + out["local_image_loss"] + out["local_report_loss"])


def test_rank_slice_of_a_two_rank_batch():
    """Rank 1 of 2: the gathers put rank 0's rows first; this rank's anchors follow rank 0's valid sentences."""
    normalize = torch.nn.functional.normalize
    other = features(seed=1, mask=torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool))
    mine = features(seed=2)
    # rank 0's contributions in the order the objective gathers them
    queue = [
        other.image_global,
        other.report_global,
        normalize(other.sentences, dim=-1).reshape(12, 8),
        normalize(other.image_to_report, dim=-1).reshape(12, 8),
        other.sentence_mask.reshape(-1),
    ]

    def gather(x):
        return torch.cat([queue.pop(0), x])

    sampler = Recording()
    objective = CMCGNSObjective(
        ObjectiveConfig(), 8, sampler, None, rank=1, world_size=2, gather=gather, gather_no_grad=gather
    )
    objective(mine, step=0)
    (problem,) = sampler.problems
    assert not queue
    assert problem.anchors.shape[0] == 6 + 7 and problem.local_rows == slice(6, 13)
    assert problem.groups.tolist() == [0, 0, 0, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5]
    assert torch.allclose(problem.anchors[6], normalize(mine.sentences[0, 0], dim=0))


def test_sampler_on_global_gets_the_symmetric_image_report_problem_with_learnable_temperature():
    sampler = Recording()
    objective = CMCGNSObjective(ObjectiveConfig(sampler_on="global"), 8, sampler, None)
    out = objective(features(), step=3)
    (problem,) = sampler.problems
    assert problem.symmetric and problem.anchors.shape == (3, 8) and problem.step == 3
    assert torch.allclose(problem.temperature, torch.tensor(0.1))
    out["global_loss"].backward()
    assert objective.logit_scale.grad is not None and objective.logit_scale.grad != 0


def test_logit_scale_is_clamped():
    objective = CMCGNSObjective(ObjectiveConfig(max_logit_scale=50.0), 8, InBatchSampler(), None)
    with torch.no_grad():
        objective.logit_scale.fill_(math.log(1000.0))
    assert torch.allclose(objective.global_temperature(), torch.tensor(1 / 50.0))
    fixed = CMCGNSObjective(ObjectiveConfig(learnable_temperature=False), 8, InBatchSampler(), None)
    assert not fixed.logit_scale.requires_grad


def test_objective_losses_fall_on_learnable_features():
    torch.manual_seed(0)
    feats = features(b=6, mask=torch.ones(6, 4, dtype=torch.bool))
    params = {
        k: torch.nn.Parameter(getattr(feats, k).clone())
        for k in ("image_global", "report_global", "patches", "sentences", "report_to_image", "image_to_report")
    }
    objective = CMCGNSObjective(ObjectiveConfig(local_report_temperature=0.2), 8, InBatchSampler(), None)
    opt = torch.optim.Adam([*params.values(), *objective.parameters()], lr=0.05)
    history = []
    for step in range(80):
        f = Features(
            **{k: torch.nn.functional.normalize(v, dim=-1) if k.endswith("global") else v for k, v in params.items()},
            sentence_mask=feats.sentence_mask,
            grid=feats.grid,
        )
        out = objective(f, step)
        opt.zero_grad()
        total_loss(out).backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in out.items() if k.endswith("_loss")})
    for key in ("global_loss", "local_image_loss", "local_report_loss"):
        assert history[-1][key] < history[0][key] - 0.3, (key, history[0][key], history[-1][key])


def test_simsiam_follows_the_official_normalisation_order():
    """Official: the predictor sees the raw f^{R->I} (and the normalised patches); `normalized` is ours."""
    from cmcgns.losses.contrastive import simsiam_loss

    normalize = torch.nn.functional.normalize
    feats = features()
    feats.report_to_image = 5.0 * feats.report_to_image  # far from unit length
    raw = CMCGNSObjective(ObjectiveConfig(), 8, Recording(), None)
    torch.manual_seed(0)
    normed = CMCGNSObjective(ObjectiveConfig(simsiam_attended="normalized"), 8, Recording(), None)
    normed.predictor.load_state_dict(raw.predictor.state_dict())
    patches = normalize(feats.patches, dim=-1)
    expected_raw = simsiam_loss(patches, feats.report_to_image, raw.predictor)
    expected_normed = simsiam_loss(patches, normalize(feats.report_to_image, dim=-1), raw.predictor)
    assert torch.allclose(raw.local_image_loss(feats), expected_raw)
    assert torch.allclose(normed.local_image_loss(feats), expected_normed)
    assert not torch.allclose(expected_raw, expected_normed)
