"""A contract test-suite third parties run on their negative sampler:

    from cmcgns.testing.sampler_contract import check_sampler
    check_sampler(lambda: MySampler(...), embed_dim=16)

It checks, at both granularities a sampler is used at (the symmetric global image-report
problem: one row per report; the local report problem: several sentence rows per report) and
under a rank slice (the problem's ``local_rows`` covering only part of the gathered batch):
- a finite scalar loss and statistics that are 0-dim tensors;
- the loss decreases when optimising learnable embeddings of paired data;
- under a rank slice, anchors outside the slice receive no gradient from their own rows
  (non-symmetric problems) and the loss stays finite;
- a state_dict round trip gives the same loss; the same seed gives the same losses.
Raises AssertionError with a message naming the failed property.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler

GRANULARITIES = {"global": (1, True, 0.1), "local_report": (4, False, 1.0)}  # rows per report, symmetric, temperature


def _paired(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, dim, generator=g)
    base = centers[torch.arange(n) % 4] + 0.3 * torch.randn(n, dim, generator=g)
    return base + 0.5 * torch.randn(n, dim, generator=g), base + 0.5 * torch.randn(n, dim, generator=g)


def _problem(
    anchors: torch.Tensor, candidates: torch.Tensor, granularity: str, step: int, rows: slice | None = None
) -> ContrastiveProblem:
    per_report, symmetric, temperature = GRANULARITIES[granularity]
    n = anchors.shape[0]
    groups = torch.arange(n) // per_report
    return ContrastiveProblem(
        F.normalize(anchors, dim=1),
        F.normalize(candidates, dim=1),
        groups,
        rows or slice(0, n),
        temperature,
        step,
        symmetric,
    )


def _check_output(out, where: str) -> None:
    assert out.loss.dim() == 0, f"{where}: loss must be a scalar, got shape {tuple(out.loss.shape)}"
    assert torch.isfinite(out.loss), f"{where}: loss is not finite"
    assert isinstance(out.stats, dict), f"{where}: stats must be a dict"
    for key, value in out.stats.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, (
            f"{where}: stat {key!r} must be a 0-dim tensor (no host sync)"
        )


def check_sampler(
    factory: Callable[[], NegativeSampler], embed_dim: int = 16, batch: int = 32, steps: int = 60
) -> None:
    for granularity in GRANULARITIES:
        where = f"[{granularity}]"
        # 1. shape / finiteness
        torch.manual_seed(0)
        sampler = factory()
        assert isinstance(sampler, NegativeSampler), "factory must return a cmcgns NegativeSampler"
        _check_output(sampler(_problem(*_paired(batch, embed_dim, 0), granularity, 0)), where)
        # 2. loss decreases on learnable embeddings
        torch.manual_seed(0)
        sampler = factory()
        anchors, candidates = (torch.nn.Parameter(t.clone()) for t in _paired(batch, embed_dim, 1))
        opt = torch.optim.Adam([anchors, candidates], lr=0.05)
        losses = []
        for step in range(steps):
            loss = sampler(_problem(anchors, candidates, granularity, step)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
        assert last < first - 0.05 * abs(first), (
            f"{where}: loss did not decrease on learnable embeddings ({first:.4f} -> {last:.4f})"
        )
        # 3. a rank slice: this rank's anchors only
        half = slice(batch // 2, batch)
        a, c = (t.clone().requires_grad_() for t in _paired(batch, embed_dim, 2))
        out = sampler(_problem(a, c, granularity, steps, rows=half))
        _check_output(out, f"{where} rank slice")
        out.loss.backward()
        if not GRANULARITIES[granularity][1]:
            assert a.grad is None or torch.count_nonzero(a.grad[: batch // 2]) == 0, (
                f"{where} rank slice: anchors outside local_rows received gradient (another rank owns them)"
            )
        assert c.grad is not None and torch.count_nonzero(c.grad) > 0, f"{where} rank slice: candidates got no gradient"
        # 4. state_dict round trip
        clone = factory()
        clone.load_state_dict(sampler.state_dict())
        for key, value in sampler.state_dict().items():
            assert torch.equal(value, clone.state_dict()[key]), f"{where}: state_dict entry {key!r} did not round-trip"
        probe = _problem(*_paired(batch, embed_dim, 3), granularity, steps + 1)
        sampler.eval(), clone.eval()
        x, y = sampler(probe).loss, clone(probe).loss
        assert torch.allclose(x, y), f"{where}: restored sampler gives a different loss ({float(x)} vs {float(y)})"
        # 5. seed determinism
        runs = []
        for _ in range(2):
            torch.manual_seed(123)
            s = factory()
            runs.append(
                torch.stack([s(_problem(*_paired(batch, embed_dim, 4 + k), granularity, k)).loss for k in range(3)])
            )
        assert torch.equal(runs[0], runs[1]), f"{where}: same seed, different losses: sampler is not deterministic"
