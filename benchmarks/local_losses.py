"""Our local losses next to MGCA's, on identical tensors, forward + backward, interleaved.

    python benchmarks/local_losses.py [--batch 32] [--patches 196] [--tokens 112] [--sentences 10]
                                      [--dims 128,768] [--repeats 10] [--device auto]

ours   the CM-CGNS local path as trained: token features averaged per sentence, the cross-modal
       attention block (learned Q/K/V, sigmoid), SimSiam local image loss (patches vs f^{R->I}) and the
       local report loss through the cm-cgns sampler (every sentence of the batch, centroid hard
       negatives, BML), all batched.
mgca   MGCA's local alignment as its paper and code describe it (written here from that description):
       one-head attention of words over patches and of patches over words, then, per sample in a
       Python loop, the word-level and patch-level InfoNCE of each query against the attended
       features of the sample's other queries (both directions), weighted by attention of the
       global token (uniform here).
Prints the median time of each and the ratio mgca / ours (>1 means ours is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class MGCALocal(nn.Module):
    def __init__(self, dim: int, temperature: float = 0.1) -> None:
        super().__init__()
        self.words_over_patches = nn.MultiheadAttention(dim, 1, batch_first=True)
        self.patches_over_words = nn.MultiheadAttention(dim, 1, batch_first=True)
        self.temperature = temperature

    def forward(self, patches: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        attended_words, _ = self.words_over_patches(words, patches, patches)
        attended_patches, _ = self.patches_over_words(patches, words, words, key_padding_mask=~word_mask)
        words, attended_words = F.normalize(words, dim=-1), F.normalize(attended_words, dim=-1)
        patches, attended_patches = F.normalize(patches, dim=-1), F.normalize(attended_patches, dim=-1)
        word_losses, patch_losses = [], []
        for i in range(words.shape[0]):  # MGCA loops over the samples
            n = int(word_mask[i].sum())
            w, aw = words[i, :n], attended_words[i, :n]
            sim = w @ aw.t() / self.temperature
            target = torch.arange(n, device=w.device)
            word_losses.append(0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.t(), target)))
            p, ap = patches[i], attended_patches[i]
            sim = p @ ap.t() / self.temperature
            target = torch.arange(p.shape[0], device=p.device)
            patch_losses.append(0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.t(), target)))
        return 0.5 * (torch.stack(word_losses).mean() + torch.stack(patch_losses).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patches", type=int, default=196)
    ap.add_argument("--tokens", type=int, default=112)
    ap.add_argument("--sentences", type=int, default=10)
    ap.add_argument("--dims", default="128,768")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    from cmcgns.config.schema import ObjectiveConfig
    from cmcgns.models.cross_attention import CrossModalAttention
    from cmcgns.models.features import Features
    from cmcgns.models.text_encoder import sentence_mean
    from cmcgns.objectives.cmcgns import CMCGNSObjective
    from cmcgns.samplers.cm_cgns import CMCGNSOptions, CMCGNSSampler
    from cmcgns.training.runtime import select_device

    device = select_device(args.device)
    b, p, t, m = args.batch, args.patches, args.tokens, args.sentences
    print(
        f"device {device}, B={b}, {p} patches, {t} tokens in {m} sentences; forward + backward, median of {args.repeats}"
    )
    for dim in [int(d) for d in args.dims.split(",")]:
        torch.manual_seed(0)
        patches = torch.randn(b, p, dim, device=device, requires_grad=True)
        tokens = torch.randn(b, t, dim, device=device, requires_grad=True)
        sentence_ids = (torch.arange(t, device=device) * m // t).expand(b, t).clone()
        word_mask = torch.ones(b, t, dtype=torch.bool, device=device)
        attention = CrossModalAttention(dim).to(device)
        sampler = CMCGNSSampler(CMCGNSOptions(num_clusters=128, init_threshold=1.0), dim).to(device)
        sampler.centroids.copy_(F.normalize(torch.randn(128, dim, device=device), dim=1))
        sampler.initialized.fill_(True)
        objective = CMCGNSObjective(ObjectiveConfig(), dim, sampler, None).to(device)
        mgca = MGCALocal(dim).to(device)

        def ours():
            normed = F.normalize(tokens, dim=-1)
            sentences, mask = sentence_mean(normed, sentence_ids, m)
            r2i, i2r = attention(patches, sentences, mask)
            feats = Features(None, None, patches, sentences, mask, r2i, i2r, (14, 14))
            loss = objective.local_image_loss(feats) + sampler(objective.local_report_problem(feats, 0)).loss
            loss.backward()

        def theirs():
            mgca(patches, tokens, word_mask).backward()

        times = {"ours": [], "mgca": []}
        for r in range(args.repeats + 1):
            for name, fn in (("ours", ours), ("mgca", theirs)):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if r:
                    times[name].append(time.perf_counter() - start)
        o, g = statistics.median(times["ours"]), statistics.median(times["mgca"])
        print(f"E={dim:4d}: ours {1000 * o:8.1f} ms   mgca {1000 * g:8.1f} ms   mgca/ours {g / o:5.2f}x")


if __name__ == "__main__":
    main()
