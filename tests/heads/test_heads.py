import torch

from cmcgns.heads.base import ReconstructionInputs, random_patch_mask
from cmcgns.heads.cm_mir import CMMIRHead, CMMIROptions
from cmcgns.models.features import Features


def _features(b=2, grid=2, e=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = grid * grid
    return Features(
        torch.randn(b, e, generator=g),
        torch.randn(b, e, generator=g),
        torch.randn(b, p, e, generator=g),
        torch.randn(b, 3, e, generator=g),
        torch.ones(b, 3, dtype=torch.bool),
        torch.randn(b, p, e, generator=g),
        torch.randn(b, 3, e, generator=g),
        (grid, grid),
    )


def _head(**options):
    opts = dict(num_heads=2, decoder_layers=2, ffn_dim=32, upsampler_channels=32)
    opts.update(options)
    return CMMIRHead(CMMIROptions(**opts), embed_dim=16, grid=2, image_size=32, in_chans=3)


def test_cm_mir_decodes_the_full_image_with_distinct_decoder_layers():
    head = _head()
    feats = _features()
    image = head.reconstruct(
        feats.patches, feats.report_to_image, random_patch_mask(2, 4, 0.5, torch.Generator(), "cpu")
    )
    assert image.shape == (2, 3, 32, 32)
    layers = head.decoder.layers
    assert layers[0] is not layers[1]
    assert layers[0].linear1.weight.data_ptr() != layers[1].linear1.weight.data_ptr()


def test_cm_mir_learns_to_reconstruct_and_uses_text_features():
    torch.manual_seed(0)
    head = _head()
    feats = _features()
    images = torch.nn.functional.interpolate(
        torch.rand(2, 3, 4, 4) * 2 - 1, size=(32, 32), mode="bilinear"
    )  # smooth: learnable
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        inputs = ReconstructionInputs(images, feats, torch.Generator().manual_seed(step), lambda x: None)
        loss = head(inputs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    # the text-to-image features reach the output
    mask = random_patch_mask(2, 4, 0.5, torch.Generator().manual_seed(0), "cpu")
    a = head.reconstruct(feats.patches, feats.report_to_image, mask)
    b = head.reconstruct(feats.patches, feats.report_to_image + 1.0, mask)
    assert not torch.allclose(a, b)


def test_masking_modes():
    fixed = _head().mask(4, 196, torch.Generator().manual_seed(0), "cpu")
    assert (fixed.sum(1) == 98).all()
    bern = _head(masking="bernoulli").mask(64, 196, torch.Generator().manual_seed(0), "cpu")
    assert abs(float(bern.float().mean()) - 0.5) < 0.02 and bern.sum(1).unique().numel() > 1


def test_masked_scope_ignores_visible_cells():
    head = _head(loss_scope="masked")
    feats = _features()
    images = torch.zeros(2, 3, 32, 32)
    gen_seed = 3
    mask = head.mask(2, 4, torch.Generator().manual_seed(gen_seed), "cpu")
    pixel = torch.nn.functional.interpolate(mask.view(2, 1, 2, 2).float(), size=(32, 32))
    changed = images + 100.0 * (1 - pixel)  # only visible cells change
    a = head(ReconstructionInputs(images, feats, torch.Generator().manual_seed(gen_seed), lambda x: None))
    b = head(ReconstructionInputs(changed, feats, torch.Generator().manual_seed(gen_seed), lambda x: None))
    assert torch.allclose(a, b)
