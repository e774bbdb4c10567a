"""What the model's encoder hands to the objective: one dataclass, no losses."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Features:
    image_global: torch.Tensor  # [B, E] L2-normalised f̄^I
    report_global: torch.Tensor  # [B, E] L2-normalised f̄^R
    patches: (
        torch.Tensor
    )  # [B, P, E] local image features f^I (projected; L2-normalised unless model.normalize_patches is off)
    sentences: torch.Tensor  # [B, M, E] local report features f^R (sentence means of normalised tokens)
    sentence_mask: torch.Tensor  # [B, M] True where the sentence exists
    report_to_image: torch.Tensor  # [B, P, E] f^{R->I}: each patch over the report's sentences
    image_to_report: torch.Tensor  # [B, M, E] f^{I->R}: each sentence over the image's patches (0 where masked)
    grid: tuple[int, int]  # the patch grid (rows, columns), P = rows * columns
