import math

import torch

from cmcgns.models.cross_attention import CrossModalAttention
from cmcgns.models.pooling import AttentionPool
from cmcgns.models.text_encoder import sentence_mean


def test_sigmoid_attention_matches_the_official_formula_and_ignores_padded_sentences():
    torch.manual_seed(0)
    block = CrossModalAttention(8, "sigmoid")
    patches, sentences = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    r2i, i2r = block(patches, sentences, mask)
    q1, k1, v1 = block.image_qkv(patches).chunk(3, -1)
    q2, k2, v2 = block.text_qkv(sentences).chunk(3, -1)
    # f^{R->I}_p = sum_m sigmoid(Q1_p . K2_m / sqrt d) V2_m over the valid sentences
    expected = sum(torch.sigmoid((q1[0] @ k2[0, m]) / math.sqrt(8)).unsqueeze(1) * v2[0, m] for m in range(2))
    assert torch.allclose(r2i[0], expected, atol=1e-5)
    expected_i2r = torch.sigmoid(q2[1] @ k1[1].t() / math.sqrt(8)) @ v1[1]
    assert torch.allclose(i2r[1], expected_i2r, atol=1e-5)
    assert torch.equal(i2r[0, 2], torch.zeros(8))  # a padded sentence has no cross-modal feature
    changed = sentences.clone()
    changed[0, 2] = 100.0
    assert torch.allclose(block(patches, changed, mask)[0][0], r2i[0])


def test_softmax_attention_weights_sum_to_one():
    torch.manual_seed(0)
    block = CrossModalAttention(8, "softmax")
    with torch.no_grad():
        block.text_qkv.weight.zero_()
        block.text_qkv.bias.copy_(torch.cat([torch.zeros(16), torch.ones(8)]))  # every value = 1
    r2i, _ = block(torch.randn(1, 4, 8), torch.randn(1, 3, 8), torch.tensor([[True, True, False]]))
    assert torch.allclose(r2i, torch.ones(1, 4, 8), atol=1e-5)


def test_sentence_mean_averages_each_sentences_tokens():
    tokens = torch.arange(12, dtype=torch.float32).view(1, 6, 2)
    ids = torch.tensor([[-1, 0, 0, 1, -1, -1]])
    sentences, mask = sentence_mean(tokens, ids, 3)
    assert torch.equal(sentences[0, 0], tokens[0, 1:3].mean(0)) and torch.equal(sentences[0, 1], tokens[0, 3])
    assert mask.tolist() == [[True, True, False]]


def test_attention_pool_ignores_masked_rows():
    torch.manual_seed(0)
    pool = AttentionPool(8, 8)
    x = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False]] * 2)
    y = x.clone()
    y[:, 2:] = 50.0
    assert torch.allclose(pool(x, mask), pool(y, mask), atol=1e-5)


def test_model_normalises_local_image_features_before_the_cross_attention():
    """Official order: f^I is L2-normalised after its projection, and the cross-attention (hence f^{I->R})
    and CM-MIR receive the normalised features; `normalize_patches: false` attends over the raw projection."""
    from cmcgns.config.schema import ModelConfig
    from cmcgns.models.cmcgns_model import CMCGNSModel

    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    batch = {
        "images": images,
        "input_ids": torch.tensor([[101, 2003, 1037, 102], [101, 2003, 102, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        "sentence_ids": torch.tensor([[-1, 0, 1, -1], [-1, 0, -1, -1]]),
    }
    for normalize in (True, False):
        config = ModelConfig.model_validate({"image": {"name": "vit_tiny_patch16_224"}, "normalize_patches": normalize})
        model = CMCGNSModel(config, image_size=32, max_sentences=2).eval()
        with torch.no_grad():
            feats = model.encode(batch)
            _, raw = model.image_encoder(images)
            local = model.image_local(raw)
            expected = torch.nn.functional.normalize(local, dim=-1) if normalize else local
            _, image_to_report = model.cross_attention(expected, feats.sentences, feats.sentence_mask)
        assert torch.allclose(feats.patches, expected, atol=1e-6)
        assert torch.allclose(feats.image_to_report, image_to_report, atol=1e-6)
        norms = feats.patches.norm(dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5) == normalize


def _identity_projections(block, dim):
    with torch.no_grad():
        for qkv in (block.image_qkv, block.text_qkv):
            qkv.weight.copy_(torch.cat([torch.eye(dim)] * 3))
            qkv.bias.zero_()


def test_cosine_attention_is_sharp_from_the_start_where_scaled_dot_product_is_uniform():
    dim = 16
    patches = torch.nn.functional.normalize(torch.randn(1, 9, dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    sentences = patches[:, [2, 7]] * 0.3  # each sentence "about" one region (unnormalised: cosine ignores the norm)
    mask = torch.ones(1, 2, dtype=torch.bool)
    cosine, softmax = CrossModalAttention(dim, "cosine", temperature=0.05), CrossModalAttention(dim, "softmax")
    for block in (cosine, softmax):
        _identity_projections(block, dim)
    sharp = cosine(patches, sentences, mask)[1][0]
    flat = softmax(patches, sentences, mask)[1][0]
    cos = torch.nn.functional.cosine_similarity
    assert cos(sharp[0], patches[0, 2], dim=0) > 0.95 and cos(sharp[1], patches[0, 7], dim=0) > 0.95
    assert cos(sharp[0], sharp[1], dim=0) < 0.5  # two sentences of one image: two different features
    assert cos(flat[0], flat[1], dim=0) > 0.99  # q.k/sqrt(d) over unit vectors: near-uniform weights
    weights = torch.softmax(patches[0] @ patches[0, 2] / 0.05, dim=0)
    assert torch.allclose(sharp[0], weights @ patches[0], atol=1e-5)  # softmax(cos / T) exactly
