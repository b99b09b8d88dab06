"""A minimal ReLU-L1 sparse autoencoder for the toy suite (the full SAE package lives elsewhere).

As in Sharkey et al. 2022: ``c = ReLU(W_e x + b_e)``, ``x̂ = D̂ᵀ c`` with unit-norm dictionary rows
``D̂_j = D_j / ‖D_j‖`` and no decoder bias. Loss (their convention, kept so that ``α`` is comparable):
``L = mean_{batch, d} (x − x̂)² + α · mean_batch ‖c‖₁ / k``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class ToySAE(nn.Module):
    """ReLU-L1 sparse autoencoder with ``k`` latents on ``d``-dimensional data."""

    def __init__(self, d: int, k: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        atoms = torch.randn(k, d, generator=g)
        atoms = atoms / atoms.norm(dim=1, keepdim=True)
        self.D = nn.Parameter(atoms.clone())
        self.W_enc = nn.Parameter(atoms.clone())  # tied initialisation: encoder = decoderᵀ
        self.b_enc = nn.Parameter(torch.zeros(k))

    def dictionary(self) -> Tensor:
        """Unit-norm atoms ``D̂`` as rows, shape ``(k, d)``."""
        return self.D / self.D.norm(dim=1, keepdim=True)

    def encode(self, x: Tensor) -> Tensor:
        return torch.relu(x @ self.W_enc.T + self.b_enc)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        codes = self.encode(x)
        return codes @ self.dictionary(), codes


@dataclass(frozen=True)
class SAERun:
    sae: ToySAE
    final_loss: float


def train_sae(sample: Callable[[int, torch.Generator], Tensor], d: int, k: int, alpha: float, steps: int,
              batch: int = 1024, lr: float = 1e-3, seed: int = 0) -> SAERun:
    """Train on fresh batches ``sample(batch, generator)`` with Adam."""
    sae = ToySAE(d, k, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    for _ in range(steps):
        x = sample(batch, g)
        x_hat, codes = sae(x)
        loss = (x - x_hat).pow(2).mean() + alpha * codes.abs().sum(1).mean() / k
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return SAERun(sae, float(loss.detach()))


def pca_directions(x: Tensor) -> Tensor:
    """All ``d`` principal directions of ``x`` (rows), the dense-basis baseline."""
    centred = x - x.mean(0)
    return torch.linalg.svd(centred, full_matrices=False)[2]
