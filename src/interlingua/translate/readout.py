"""Readout transfer: a readout on B's activations whose optimum is exactly A's concept score.

Least squares on A's score (the concept's logit) has its optimum at that score, so a B
readout fitted this way reproduces A's concept wherever B's activations can express it.
Optional sample weights make errors on words A scores positive (false negatives) cost more or
less than errors on the rest (false positives), without moving that optimum.
"""

from __future__ import annotations

import torch

from interlingua.concepts.methods import Readout
from interlingua.similarity import standardise


def fit_transfer(
    xb: torch.Tensor, score_a: torch.Tensor, *, lam: float = 1e-2, pos_weight: float = 1.0,
) -> Readout:
    """Weighted ridge regression of A's score on standardised B activations, in B's raw space.

    Minimises Σ wᵢ (sᵢ − zᵢ·c − b)² + λ n ‖c‖², with wᵢ = ``pos_weight`` where A's score
    sᵢ > 0 and 1 elsewhere, z the standardised activations.
    """
    z, mean, std = standardise(xb)
    y = score_a.double()
    w = torch.where(y > 0, torch.tensor(float(pos_weight), dtype=y.dtype), torch.tensor(1.0, dtype=y.dtype))
    w = w / w.mean()
    z_bar = (w[:, None] * z).sum(0) / w.sum()
    y_bar = float((w * y).sum() / w.sum())
    zc, yc = z - z_bar, y - y_bar
    n, d = zc.shape
    gram = zc.T @ (w[:, None] * zc) + lam * n * torch.eye(d, dtype=zc.dtype)
    coef = torch.linalg.solve(gram, zc.T @ (w * yc))
    intercept = y_bar - float(z_bar @ coef)
    return Readout(weight=(coef / std).float(), bias=float(intercept - (mean / std) @ coef))
