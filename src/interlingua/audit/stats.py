"""The audit's numerics (pure functions): calibration, disagreement against its null, explanations.

* :func:`fit_calibration` — B's translated score as a linear function of A's, fitted on
  held-out text (never the texts being ranked), with a robust residual scale (MAD).
* :func:`disagreement` — ``|s_B − f(s_A)| / scale`` per input (or word).
* :func:`null_p_values` — each input's disagreement placed in the disagreements of null texts
  read by the same code path: ``p = (1 + #{null ≥ d}) / (1 + n_null)``; and
  :func:`benjamini_hochberg` for q-values over the inputs ranked.
* :func:`explain` — which features (A's other concepts, SAE latents) tell the top
  disagreements from the other inputs: each feature's AUROC for that membership, tested
  against random sets of the same size; the family-wise correction is the permutation
  distribution of the maximum over all features tried (Westfall–Young single step), so trying
  more concepts costs power, never validity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interlingua.errors import InterlinguaError
from interlingua.metrics import _average_ranks


@dataclass(frozen=True)
class Calibration:
    """``f(s_A) = intercept + slope · s_A``; ``scale`` the robust spread of the residuals (1.4826 · MAD)."""

    slope: float
    intercept: float
    scale: float
    n: int

    def expected(self, score_a: torch.Tensor) -> torch.Tensor:
        return self.intercept + self.slope * score_a.double()

    def residual(self, score_a: torch.Tensor, score_b: torch.Tensor) -> torch.Tensor:
        return score_b.double() - self.expected(score_a)


def fit_calibration(score_a: torch.Tensor, score_b: torch.Tensor) -> Calibration:
    """Least-squares line of ``score_b`` on ``score_a`` with the MAD scale of its residuals."""
    a, b = score_a.double().flatten(), score_b.double().flatten()
    if len(a) != len(b) or len(a) < 3:
        raise InterlinguaError(f"a calibration needs at least 3 paired scores, not {len(a)} and {len(b)}.")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise InterlinguaError("a calibration score is not finite (NaN or inf); check the models' activations.")
    am, bm = a.mean(), b.mean()
    var = ((a - am) ** 2).sum()
    slope = float(((a - am) * (b - bm)).sum() / var) if float(var) > 0 else 0.0
    intercept = float(bm - slope * am)
    res = b - (intercept + slope * a)
    scale = float(1.4826 * (res - res.median()).abs().median())
    if not scale > 0:
        scale = float(res.std()) if float(res.std()) > 0 else 1.0
    return Calibration(slope=slope, intercept=intercept, scale=scale, n=len(a))


def disagreement(cal: Calibration, score_a: torch.Tensor, score_b: torch.Tensor) -> torch.Tensor:
    """``|s_B − f(s_A)| / scale``: how far B's translated score is from what A's score predicts."""
    return cal.residual(score_a, score_b).abs() / cal.scale


def null_p_values(values: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """One-sided p-value of each value in the null sample (large is extreme), never 0."""
    null = null.double().flatten().sort().values
    n = len(null)
    if n == 0:
        raise InterlinguaError("the null sample of disagreements is empty.")
    at_least = n - torch.searchsorted(null, values.double().flatten(), right=False)
    return (1 + at_least).double() / (1 + n)


def benjamini_hochberg(p: torch.Tensor) -> torch.Tensor:
    """q-values (Benjamini–Hochberg step-up) of ``p``, in the same order."""
    p = p.double().flatten()
    m = len(p)
    order = torch.argsort(p)
    ranked = p[order] * m / torch.arange(1, m + 1, dtype=torch.float64)
    q = torch.flip(torch.cummin(torch.flip(ranked, [0]), 0).values, [0]).clamp(max=1.0)
    out = torch.empty_like(q)
    out[order] = q
    return out


def _column_ranks(x: torch.Tensor) -> torch.Tensor:
    """Column-wise mid-ranks (1 … n) of ``x`` [n, F]."""
    x = x.double()
    return torch.stack([_average_ranks(x[:, j]) for j in range(x.shape[1])], 1) if x.shape[1] else x


@dataclass(frozen=True)
class Explained:
    """Per feature: AUROC of the feature for telling the top disagreements from the rest, with raw and
    family-wise corrected permutation p-values (two-sided: |AUROC − 0.5|)."""

    auroc: torch.Tensor
    p_raw: torch.Tensor
    p_corrected: torch.Tensor
    draws: int


def explain(features: torch.Tensor, top: torch.Tensor, *, draws: int = 1000, seed: int = 0) -> Explained:
    """Which columns of ``features`` [n, F] tell the inputs in ``top`` (bool [n]) from the others.

    The effect is the AUROC of each feature for membership of ``top`` (from mid-ranks, ties ½).
    The null draws random sets of the same size ``draws`` times (the inputs are exchangeable
    under "nothing explains the disagreement"); ``p_raw`` compares each feature's |AUROC − ½|
    with its own null, ``p_corrected`` with the null of the maximum over all F features
    (Westfall–Young single step: controls the family-wise error over everything tried).
    """
    top = torch.as_tensor(top, dtype=torch.bool).flatten()
    if features.dim() != 2 or features.shape[0] != top.shape[0]:
        raise InterlinguaError(f"features must be [n, F] with n = {top.shape[0]}, not {tuple(features.shape)}.")
    n, k = len(top), int(top.sum())
    if k == 0 or k == n:
        raise InterlinguaError("explaining disagreement needs some inputs inside the top set and some outside.")
    ranks = _column_ranks(features)
    scale = k * (n - k)

    def auroc_of(member: torch.Tensor) -> torch.Tensor:  # member [..., n] of 0/1
        return (member.double() @ ranks - k * (k + 1) / 2) / scale

    obs = auroc_of(top)
    gen = torch.Generator().manual_seed(seed)
    picks = torch.rand(draws, n, generator=gen).argsort(1)[:, :k]
    member = torch.zeros(draws, n, dtype=torch.float64).scatter_(1, picks, 1.0)
    null = (auroc_of(member) - 0.5).abs()  # [draws, F]
    eff = (obs - 0.5).abs()
    p_raw = (1 + (null >= eff - 1e-12).sum(0)).double() / (1 + draws)
    p_corr = (1 + (null.max(1).values[:, None] >= eff[None, :] - 1e-12).sum(0)).double() / (1 + draws)
    return Explained(auroc=obs, p_raw=p_raw, p_corrected=p_corr, draws=draws)
