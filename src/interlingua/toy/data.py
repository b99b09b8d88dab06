"""Synthetic data with known features.

Two families:

* TMS data (Elhage et al. 2022): ``x ∈ ℝⁿ`` with ``x_i = u_i · z_i``, ``u_i ~ U[0, 1)`` and
  ``z_i ~ Bernoulli(p_i)``; the features are the standard basis.
* Planted features (Sharkey, Braun, Millidge 2022): ``N`` unit directions ``g_i ∈ ℝᵈ`` and
  ``x = Σ_i c_i g_i`` with the same sparse coefficients, optionally correlated through a Gaussian
  copula. The expected number of active features ``Σ_i p_i`` is a parameter and is honoured
  exactly, correlated or not.

The directions are drawn from their own seed, separate from the sampling seed, so that two
models (different seeds, different widths) can be trained on the same true features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def feature_probabilities(n: int, expected_active: float, decay: float = 1.0) -> Tensor:
    """Firing probabilities ``p_i ∝ decayⁱ`` with ``Σ_i p_i = expected_active`` and ``p_i ≤ 1``.

    Probabilities that would exceed 1 are clipped and the remainder rescaled (water-filling), so
    the requested expectation is met whenever ``expected_active ≤ n``.
    """
    if not 0 < expected_active <= n:
        raise ValueError(f"expected_active must lie in (0, {n}], got {expected_active}")
    shape = decay ** torch.arange(n, dtype=torch.float64)
    p = torch.zeros(n, dtype=torch.float64)
    free = torch.ones(n, dtype=torch.bool)
    for _ in range(n):
        remaining = expected_active - (~free).sum()
        p[free] = shape[free] * remaining / shape[free].sum()
        over = free & (p > 1)
        if not over.any():
            break
        p[over] = 1.0
        free &= ~over
    return p.clamp(max=1.0).float()


def tms_batch(batch: int, probability: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """TMS inputs: ``x_i = u_i · z_i`` with ``u_i ~ U[0,1)``, ``z_i ~ Bernoulli(p_i)``.

    ``probability`` has shape ``(..., n)`` (a leading instance axis is allowed); the result has
    shape ``(batch, ..., n)``.
    """
    shape = (batch, *probability.shape)
    fire = torch.rand(shape, generator=generator) < probability
    return torch.rand(shape, generator=generator) * fire


def unit_directions(n: int, d: int, seed: int) -> Tensor:
    """``n`` Gaussian directions in ``ℝᵈ`` normalised to unit length (rows), from their own seed."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, generator=g)
    return v / v.norm(dim=1, keepdim=True)


@dataclass(frozen=True)
class PlantedFeatures:
    """Known sparse features: ``x = Σ_i c_i g_i`` with ``c_i = u_i · z_i``, ``u_i ~ U[0,1)``.

    ``z_i ~ Bernoulli(p_i)`` independently, or, when ``mixing`` is set, ``z_i = [ζ_i < Φ⁻¹(p_i)]``
    with ``ζ = normalise(mixing · γ + ε)``, ``γ ~ N(0, I_r)``, ``ε ~ N(0, I_N)``: a Gaussian copula
    whose marginals are exactly ``p_i``, so ``E[#active] = Σ_i p_i`` holds under correlation too.
    """

    directions: Tensor  # (N, d), unit rows g_i
    probability: Tensor  # (N,)
    mixing: Tensor | None = None  # (N, r) low-rank copula loadings

    @property
    def n_features(self) -> int:
        return self.directions.shape[0]

    @property
    def dim(self) -> int:
        return self.directions.shape[1]

    @property
    def expected_active(self) -> float:
        return float(self.probability.sum())

    def sample_codes(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        """Sparse coefficients ``c`` of shape ``(batch, N)``."""
        n = self.n_features
        if self.mixing is None:
            fire = torch.rand(batch, n, generator=generator) < self.probability
        else:
            gamma = torch.randn(batch, self.mixing.shape[1], generator=generator)
            eps = torch.randn(batch, n, generator=generator)
            scale = (self.mixing.pow(2).sum(1) + 1).sqrt()
            zeta = (gamma @ self.mixing.T + eps) / scale
            fire = zeta < torch.special.ndtri(self.probability.double()).float()
        return torch.rand(batch, n, generator=generator) * fire

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x, c)``: data ``x = c · G`` of shape ``(batch, d)`` and its codes ``c``."""
        codes = self.sample_codes(batch, generator)
        return codes @ self.directions, codes


def planted_features(dim: int, n_features: int, expected_active: float = 5.0, decay: float = 0.99,
                     correlated: bool = False, rank: int = 4, strength: float = 1.0,
                     seed: int = 0) -> PlantedFeatures:
    """Planted features as in Sharkey et al.: ``p_i ∝ decayⁱ`` scaled to ``expected_active``.

    With ``correlated=True`` the firing events share ``rank`` latent Gaussian factors with
    loadings ``~ N(0, strength²)``; the marginal probabilities stay ``p_i``.
    """
    directions = unit_directions(n_features, dim, seed)
    probability = feature_probabilities(n_features, expected_active, decay)
    mixing = None
    if correlated:
        g = torch.Generator().manual_seed(seed + 1_000_003)
        mixing = strength * torch.randn(n_features, rank, generator=g)
    return PlantedFeatures(directions, probability, mixing)


@dataclass(frozen=True)
class GaussianControl:
    """Dense Gaussian data ``N(μ, Σ)`` with the mean and covariance of a reference sample: the
    must-fail control (no sparse structure, the same second-order statistics)."""

    mean: Tensor
    root: Tensor  # Σ^{1/2}

    @classmethod
    def like(cls, x: Tensor) -> GaussianControl:
        centred = (x - x.mean(0)).double()
        cov = centred.T @ centred / (len(x) - 1)
        evals, evecs = torch.linalg.eigh(cov)
        return cls(x.mean(0), (evecs * evals.clamp(min=0).sqrt()).float() @ evecs.float().T)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(batch, len(self.mean), generator=generator) @ self.root + self.mean
