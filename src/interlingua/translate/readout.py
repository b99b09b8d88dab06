"""Readout transfer: a readout on B's activations whose optimum is exactly A's concept score.

Least squares on A's score (the concept's logit) has its optimum at that score, so a B
readout fitted this way reproduces A's concept wherever B's activations can express it.
Optional sample weights make errors on words A scores positive (false negatives) cost more or
less than errors on the rest (false positives), without moving that optimum.
"""

from __future__ import annotations

import torch

from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.similarity import r2_score, ridge_fit, standardise


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


class MLPReadout(torch.nn.Module):
    """A one-hidden-layer readout on standardised B activations (the non-linear option)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.net = torch.nn.Sequential(torch.nn.Linear(mean.shape[0], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.float() - self.mean) / self.std)[:, 0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # a readout: no autograd outside training
        with torch.no_grad():
            return super().__call__(x)


def fit_mlp_transfer(xb: torch.Tensor, score_a: torch.Tensor, groups: torch.Tensor, *, hidden: int = 64,
                     weight_decay: float = 1e-2, steps: int = 400, val_every: int = 5, seed: int = 0,
                     lam: float = 1e-2) -> tuple[MLPReadout, dict]:
    """An MLP readout of A's score on B, with the over-fitting check done on held-out documents.

    Trained full-batch with AdamW on all groups except every ``val_every``-th; the weights of
    the step with the best held-out R² are kept. The report compares train and held-out R² with
    the linear transfer's held-out R² on the same split: a non-linear readout earns its place
    only if it beats the linear one on held-out documents without a large train/held-out gap.
    """
    val = (groups % val_every) == 0
    if val.all() or not val.any():
        raise InterlinguaError("the MLP readout needs text from at least two documents per fold; give more text.")
    _, mean, std = standardise(xb[~val])
    model = MLPReadout(mean, std, hidden, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    y = score_a.float()
    best, best_state = -float("inf"), None
    for _ in range(steps):
        with torch.enable_grad():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model.forward(xb[~val]), y[~val])
            loss.backward()
            opt.step()
        r2 = r2_score(y[val], model(xb[val]))
        if r2 > best:
            best, best_state = r2, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    linear = fit_transfer(xb[~val], score_a[~val], lam=lam)
    r2_train = r2_score(y[~val], model(xb[~val]))
    report = {"r2_train": round(r2_train, 4), "r2_val": round(best, 4),
              "linear_r2_val": round(r2_score(y[val], linear(xb[val])), 4), "hidden": hidden}
    report["overfit"] = r2_train - best > 0.1
    report["beats_linear"] = best > report["linear_r2_val"]
    return model, report
