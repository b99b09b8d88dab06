"""Readout transfer: a readout on B's activations whose optimum is exactly A's concept score.

Least squares on A's score (the concept's logit) has its optimum at that score, so a B
readout fitted this way reproduces A's concept wherever B's activations can express it.
Optional sample weights make errors on words A scores positive (false negatives) cost more or
less than errors on the rest (false positives), without moving that optimum.
"""

from __future__ import annotations

import torch

from interlingua.concepts.methods import Readout
from interlingua.similarity import ridge_fit, standardise


def transfer_readouts(xb: torch.Tensor, scores: torch.Tensor, *, lam: float = 1e-2,
                      weights: torch.Tensor | None = None) -> list[Readout]:
    """One B readout per column of ``scores`` [n, k], all from a single solve.

    Ridge on standardised B activations (λ scaled by n, as in :func:`ridge_fit`), returned in
    B's raw coordinates: ``readout(x_b) = x_b · weight + bias``.
    """
    z, mean, std = standardise(xb)
    coef, intercept = ridge_fit(z, scores if scores.dim() == 2 else scores[:, None], lam, weights)
    return [Readout(weight=(coef[:, j] / std).float(), bias=float(intercept[j] - (mean / std) @ coef[:, j]))
            for j in range(coef.shape[1])]


def fit_transfer(
    xb: torch.Tensor, score_a: torch.Tensor, *, lam: float = 1e-2, pos_weight: float = 1.0,
) -> Readout:
    """Weighted ridge regression of A's score on standardised B activations, in B's raw space.

    Minimises Σ wᵢ (sᵢ − zᵢ·c − b)² + λ n ‖c‖², with wᵢ = ``pos_weight`` where A's score
    sᵢ > 0 and 1 elsewhere, z the standardised activations.
    """
    weights = None if pos_weight == 1.0 else torch.where(score_a > 0, float(pos_weight), 1.0).double()
    return transfer_readouts(xb, score_a, lam=lam, weights=weights)[0]
