"""Analytic feature geometries: the uniform polytopes of Elhage et al. and their tegum products.

A tegum product places polytopes in orthogonal subspaces; each feature's dimensionality is then
that of its own polytope: ``dims / vertices`` for these tight frames.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def regular_polygon(k: int) -> Tensor:
    """``k`` unit vectors in ℝ² at angles ``2πj/k`` (``k ≥ 3``). ``D_i = 2/k``."""
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def tetrahedron() -> Tensor:
    """4 unit vectors in ℝ³ with pairwise ``cos = −1/3``. ``D_i = 3/4``."""
    v = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    return v / 3**0.5


def square_antiprism() -> Tensor:
    """8 unit vectors in ℝ³: two squares, rotated by 45°, at heights ``±1/√3``. ``D_i = 3/8``.

    At that height ``Σ v vᵀ = (8/3) I`` (a tight frame), which is what makes every ``D_i = 3/8``.
    """
    h = 1 / 3**0.5
    r = (1 - h**2) ** 0.5
    rows = []
    for j in range(4):
        a, b = math.pi / 2 * j, math.pi / 2 * j + math.pi / 4
        rows.append([r * math.cos(a), r * math.sin(a), h])
        rows.append([r * math.cos(b), r * math.sin(b), -h])
    return torch.tensor(rows, dtype=torch.float64)


def tegum_product(*parts: Tensor) -> Tensor:
    """Block-diagonal embedding: each part's vectors in their own orthogonal subspace."""
    n = sum(p.shape[0] for p in parts)
    m = sum(p.shape[1] for p in parts)
    W = torch.zeros(n, m, dtype=torch.float64)
    i = j = 0
    for p in parts:
        W[i:i + p.shape[0], j:j + p.shape[1]] = p
        i, j = i + p.shape[0], j + p.shape[1]
    return W


def polytope_zoo() -> dict[str, tuple[Tensor, float]]:
    """The named geometries with their expected per-feature dimensionality."""
    return {
        "dedicated": (torch.eye(1, dtype=torch.float64), 1.0),
        "tetrahedron": (tetrahedron(), 3 / 4),
        "triangle": (regular_polygon(3), 2 / 3),
        "digon": (torch.tensor([[1.0], [-1.0]], dtype=torch.float64), 1 / 2),  # antipodal pair on a line
        "pentagon": (regular_polygon(5), 2 / 5),
        "square_antiprism": (square_antiprism(), 3 / 8),
    }
