import torch
import torch.nn.functional as F

from cmcgns.losses.contrastive import SimSiamPredictor, simsiam_loss, within_sample_info_nce


def test_simsiam_falls_on_learnable_pairs_and_stops_gradient_on_the_target():
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.randn(16, 8))
    y = torch.nn.Parameter(torch.randn(16, 8))
    predictor = SimSiamPredictor(8, 4)
    opt = torch.optim.Adam([x, y, *predictor.parameters()], lr=0.02)
    losses = []
    for _ in range(200):
        loss = simsiam_loss(x, y, predictor)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] > -0.3 and losses[-1] < -0.7  # towards -1 (a rank-4 predictor cannot reach it), from about 0
    # stop-gradient: with an identity predictor the gradient reaching x comes only from cos(h(x), sg(y))
    a, b = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)
    simsiam_loss(a, b, torch.nn.Identity()).backward()
    a2 = a.detach().clone().requires_grad_()
    (-0.5 * F.cosine_similarity(a2, b, dim=-1)).mean().backward()
    assert torch.allclose(a.grad, a2.grad, atol=1e-6)


def test_simsiam_mask_excludes_rows():
    x, y = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, False, True], [True, True, True]])
    full = simsiam_loss(x, y, torch.nn.Identity(), mask)
    y2 = y.clone()
    y2[0, 1] = -x[0, 1]
    assert torch.allclose(full, simsiam_loss(x, y2, torch.nn.Identity(), mask))


def test_within_sample_info_nce_is_low_for_aligned_and_high_for_shuffled_queries():
    q = F.normalize(torch.randn(2, 5, 16), dim=-1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    aligned = within_sample_info_nce(q, q, mask, 0.1)
    shuffled = within_sample_info_nce(q, q[:, torch.tensor([1, 2, 3, 4, 0])], mask, 0.1)
    assert aligned < 0.5 < shuffled
