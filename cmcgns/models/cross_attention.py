"""The cross-modal attention block of CM-CGNS (paper Fig. 1, official ``local_attention.py``).

One block with learned Q/K/V maps for each modality gives both directions within each sample:
- f^{R->I}_p = sum_m w(Q_img p . K_txt m) V_txt m : each patch over the report's sentences;
- f^{I->R}_m = sum_p w(Q_txt m . K_img p) V_img p : each sentence over the image's patches.
``sigmoid`` (official default): w = sigmoid(q.k / sqrt(d)), not normalised; ``softmax``: the usual
normalised attention; ``cosine``: softmax(cos(q, k) / temperature), whose sharpness does not wait
for the projections' norms to grow (with q.k / sqrt(d) over L2-normalised inputs the logits start
near 0, so every sentence of an image attends uniformly for a long time). Padded sentences never contribute and their outputs are zero.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class CrossModalAttention(nn.Module):
    def __init__(
        self, dim: int, kind: Literal["sigmoid", "softmax", "cosine"] = "sigmoid", temperature: float = 0.1
    ) -> None:
        super().__init__()
        self.kind = kind
        self.scale = dim**-0.5 if kind != "cosine" else 1.0 / temperature
        self.image_qkv = nn.Linear(dim, 3 * dim)
        self.text_qkv = nn.Linear(dim, 3 * dim)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "cosine":
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        if self.kind in ("softmax", "cosine"):
            mask = None if key_mask is None else key_mask[:, None, :]
            if key_mask is not None:  # a query with no valid key attends to nothing
                mask = mask | ~key_mask.any(1)[:, None, None]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            return out if key_mask is None else out * key_mask.any(1)[:, None, None].to(out.dtype)
        weights = torch.sigmoid(torch.einsum("bqd,bkd->bqk", q, k) * self.scale)
        if key_mask is not None:
            weights = weights * key_mask[:, None, :].to(weights.dtype)
        return torch.einsum("bqk,bkd->bqd", weights, v)

    def forward(
        self, patches: torch.Tensor, sentences: torch.Tensor, sentence_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """patches [B, P, D], sentences [B, M, D], sentence_mask [B, M] -> (f^{R->I} [B, P, D], f^{I->R} [B, M, D])."""
        q_img, k_img, v_img = self.image_qkv(patches).chunk(3, dim=-1)
        q_txt, k_txt, v_txt = self.text_qkv(sentences).chunk(3, dim=-1)
        report_to_image = self._attend(q_img, k_txt, v_txt, sentence_mask)
        image_to_report = self._attend(q_txt, k_img, v_img, None)
        return report_to_image, image_to_report * sentence_mask.unsqueeze(-1).to(image_to_report.dtype)
