"""Toy models whose features are known.

* :class:`TiedSuperposition`: Elhage et al. 2022, ``h = W x``, ``x' = ReLU(Wᵀ h + b)`` (or linear),
  with ``W ∈ ℝ^{m×n}``. Stored as feature rows ``W ∈ ℝ^{n×m}``, with a leading instance axis so
  that many independent models (sparsity levels, seeds) train in one batched pass.
* :class:`ProjectedMLP`: Jermyn, Schiefer, Hubinger 2022: sparse features go through a fixed random
  projection ``P ∈ ℝ^{N×d}``, then ``y = W₂ ReLU(W₁ Pᵀx + b₁)`` with ``k`` hidden neurons and no
  output bias.
* :class:`FactorisedModel`: a rank-``r`` product ``U Vᵀ`` learning a target matrix (S-curves).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TiedSuperposition(nn.Module):
    """``instances`` independent tied autoencoders ``x' = act(x W Wᵀ + b)``.

    ``W`` has shape ``(instances, n, m)`` (row ``i`` of instance ``k`` is feature ``i``'s
    embedding); ``b`` has shape ``(instances, n)``. Inputs are ``(batch, instances, n)``.
    """

    def __init__(self, n: int, m: int, instances: int = 1, relu_output: bool = True, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        std = (2.0 / (n + m)) ** 0.5  # Xavier normal, per instance
        self.W = nn.Parameter(torch.randn(instances, n, m, generator=g) * std)
        self.b = nn.Parameter(torch.zeros(instances, n))
        self.relu_output = relu_output

    def hidden(self, x: Tensor) -> Tensor:
        """``h = W x``, shape ``(batch, instances, m)``."""
        return torch.einsum("bin,inm->bim", x, self.W)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.einsum("bim,inm->bin", self.hidden(x), self.W) + self.b
        return torch.relu(out) if self.relu_output else out


class ProjectedMLP(nn.Module):
    """Untied two-layer model on projected features: ``y = W₂ ReLU(W₁ (x P) + b₁)``.

    ``P ∈ ℝ^{N×d}`` is a fixed buffer (unit rows), ``W₁ ∈ ℝ^{k×d}``, ``b₁ ∈ ℝᵏ``, ``W₂ ∈ ℝ^{N×k}``.
    The task is feature decoding: reconstruct the sparse ``x`` from its projection.
    """

    def __init__(self, projection: Tensor, k: int, bias_init: float = 0.0, seed: int = 0):
        super().__init__()
        n, d = projection.shape
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("projection", projection.clone())
        self.W1 = nn.Parameter(torch.randn(k, d, generator=g) / d**0.5)
        self.b1 = nn.Parameter(torch.full((k,), float(bias_init)))
        self.W2 = nn.Parameter(torch.randn(n, k, generator=g) / k**0.5)

    def feature_embedding(self) -> Tensor:
        """Each feature's pre-activation direction over neurons, ``E = P W₁ᵀ ∈ ℝ^{N×k}``."""
        return self.projection @ self.W1.T

    def hidden(self, x: Tensor) -> Tensor:
        """The ``k`` neuron activations ``ReLU(x P W₁ᵀ + b₁)``, shape ``(batch, k)``."""
        return torch.relu(x @ self.feature_embedding() + self.b1)

    def forward(self, x: Tensor) -> Tensor:
        return self.hidden(x) @ self.W2.T


class FactorisedModel(nn.Module):
    """``M = U Vᵀ`` of rank ``r`` with entries of ``U, V`` drawn from ``N(0, init_scale²)``."""

    def __init__(self, n: int, rank: int, init_scale: float, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.U = nn.Parameter(torch.randn(n, rank, generator=g, dtype=torch.float64) * init_scale)
        self.V = nn.Parameter(torch.randn(n, rank, generator=g, dtype=torch.float64) * init_scale)

    def forward(self) -> Tensor:
        return self.U @ self.V.T
