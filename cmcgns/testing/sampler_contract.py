"""A contract test-suite third parties run on their negative sampler:

    from cmcgns.testing.sampler_contract import check_sampler
    check_sampler(lambda: MySampler(...), embed_dim=16)

It checks output shape/finiteness, that the loss decreases when optimising learnable
embeddings of paired data, a state_dict round trip, and determinism under a fixed seed.
Raises AssertionError with a message naming the failed property.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from cmcgns.samplers.base import NegativeSampler, SamplerInputs


def _inputs(image: torch.Tensor, text: torch.Tensor, step: int) -> SamplerInputs:
    cross = F.normalize(image + text, dim=1)
    return SamplerInputs(F.normalize(image, dim=1), F.normalize(text, dim=1), cross, slice(0, image.shape[0]), 0.1, step)


def _paired_batch(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, dim, generator=g)
    assignment = torch.arange(n) % 4
    base = centers[assignment] + 0.3 * torch.randn(n, dim, generator=g)
    return base + 0.5 * torch.randn(n, dim, generator=g), base + 0.5 * torch.randn(n, dim, generator=g)


def check_sampler(factory: Callable[[], NegativeSampler], embed_dim: int = 16, batch: int = 32, steps: int = 60) -> None:
    # 1. shape / finiteness
    torch.manual_seed(0)
    sampler = factory()
    assert isinstance(sampler, NegativeSampler), "factory must return a cmcgns NegativeSampler"
    img, txt = _paired_batch(batch, embed_dim, 0)
    out = sampler(_inputs(img, txt, 0))
    assert out.loss.dim() == 0, f"loss must be a scalar, got shape {tuple(out.loss.shape)}"
    assert torch.isfinite(out.loss), "loss is not finite"
    assert isinstance(out.stats, dict), "stats must be a dict"
    # 2. loss decreases on learnable embeddings
    torch.manual_seed(0)
    sampler = factory()
    img_p, txt_p = (torch.nn.Parameter(t.clone()) for t in _paired_batch(batch, embed_dim, 1))
    opt = torch.optim.Adam([img_p, txt_p], lr=0.05)
    first = last = None
    for step in range(steps):
        loss = sampler(_inputs(img_p, txt_p, step)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        value = float(loss.detach())
        first = value if first is None else first
        last = value
    assert last < first * 0.8, f"loss did not decrease on learnable embeddings ({first:.4f} -> {last:.4f})"
    # 3. state_dict round trip
    clone = factory()
    clone.load_state_dict(sampler.state_dict())
    for key, value in sampler.state_dict().items():
        assert torch.equal(value, clone.state_dict()[key]), f"state_dict entry {key!r} did not round-trip"
    probe = _inputs(*_paired_batch(batch, embed_dim, 2), steps)
    a, b = sampler(probe).loss, clone(probe).loss
    assert torch.allclose(a, b), f"restored sampler gives a different loss ({float(a)} vs {float(b)})"
    # 4. seed determinism
    losses = []
    for _ in range(2):
        torch.manual_seed(123)
        s = factory()
        losses.append(torch.stack([s(_inputs(*_paired_batch(batch, embed_dim, 3 + k), k)).loss for k in range(3)]))
    assert torch.equal(losses[0], losses[1]), "same seed, different losses: sampler is not deterministic"
