"""The oracle: InfoNCE with every true false negative removed, read from the synthetic data's ground truth.

A benchmark upper bound, not a method. The synthetic generator records what each sentence means
(``finding:side:polarity``); this sampler takes the local report problem's ``meanings`` and drops, for
each anchor, every candidate of another row whose sentence means the same as the anchor's (the
negatives that are not negatives). No clustering sampler can know the false negatives better, so
the oracle bounds what removing false negatives can give on the same data and scale: where it does
not beat plain in-batch negatives, no false-negative handling (CM-CGNS's included) can be expected
to. Sentences without a recorded meaning (-1) flag nothing. The positive is never removed.

Only the local report loss carries meanings, and only synthetic data records them: anywhere else
the sampler refuses in one line.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmcgns.errors import ConfigError
from cmcgns.plugins import Options, Register, hookimpl
from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler, SamplerOutput


class OracleOptions(Options):
    """oracle takes no options."""


def same_meaning_negatives(problem: ContrastiveProblem) -> torch.Tensor:
    """[local anchors, candidates] True where the candidate is a negative whose sentence means the same."""
    if problem.meanings is None:
        raise ConfigError(
            "sampler oracle: the problem carries no sentence meanings; it runs only on the local report loss "
            "(objective.sampler_on: local_report) of synthetic data, whose manifest records them"
        )
    mine = problem.meanings[problem.local_rows]
    same = (mine[:, None] == problem.meanings[None, :]) & (mine[:, None] >= 0)
    return same.scatter(1, problem.positives[:, None], False)


class OracleSampler(NegativeSampler):
    reads_meanings = True

    def forward(self, problem: ContrastiveProblem) -> SamplerOutput:
        if problem.symmetric:
            raise ConfigError("sampler oracle: acts on the local report loss only (objective.sampler_on: local_report)")
        flagged = same_meaning_negatives(problem)
        logits = problem.anchors[problem.local_rows] @ problem.candidates.t() / problem.temperature
        loss = F.cross_entropy(logits.masked_fill(flagged, float("-inf")), problem.positives)
        return SamplerOutput(loss, {"flagged_rate": flagged.float().mean()})


def build(options: OracleOptions, *, embed_dim: int) -> OracleSampler:  # noqa: ARG001 (interface)
    return OracleSampler()


@hookimpl
def register_negative_samplers(register: Register) -> None:
    register(
        "oracle",
        build,
        options=OracleOptions,
        description="benchmark upper bound: in-batch InfoNCE without the negatives that truly share the "
        "anchor's meaning (synthetic data only)",
    )
