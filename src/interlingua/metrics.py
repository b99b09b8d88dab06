"""Metrics with their uncertainty: AUROC, bootstrap confidence intervals, null bands.

Pure functions on tensors. Every score interlingua reports is computed here, so that a
score and its null go through exactly the same code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half.

    ``labels`` are binarised at 0.5. Returns NaN when one class is absent.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    y = torch.as_tensor(labels, dtype=torch.float64).flatten() > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties given their average rank."""
    order = torch.argsort(x, stable=True)
    sorted_x = x[order]
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(1, len(x) + 1, dtype=x.dtype)
    # average over runs of equal values
    _, inverse, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=x.dtype).index_add_(0, inverse, ranks[order])
    ranks[order] = (sums / counts)[inverse]
    return ranks


def bootstrap_ci(
    stat: Callable[[torch.Tensor], float], n: int, *, n_boot: int = 1000, level: float = 0.95,
    seed: int = 0, groups: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(indices)`` over ``n`` items.

    ``groups`` (one id per item) resamples whole groups, e.g. both texts of a contrastive
    pair together, so that paired items are not treated as independent.
    """
    gen = torch.Generator().manual_seed(seed)
    if groups is None:
        groups = torch.arange(n)
    ids, inverse = torch.unique(groups, return_inverse=True)
    members = [torch.nonzero(inverse == g).squeeze(1) for g in range(len(ids))]
    values = []
    for _ in range(n_boot):
        pick = torch.randint(len(members), (len(members),), generator=gen)
        idx = torch.cat([members[int(g)] for g in pick])
        v = stat(idx)
        if v == v:  # skip NaN resamples (one class drawn only)
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    t = torch.tensor(values, dtype=torch.float64)
    alpha = (1 - level) / 2
    return float(t.quantile(alpha)), float(t.quantile(1 - alpha))


def null_band(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of a null distribution's samples."""
    t = torch.tensor(values, dtype=torch.float64)
    alpha = (1 - level) / 2
    return float(t.quantile(alpha)), float(t.quantile(1 - alpha))


def auroc_null_band(n_pos: int, n_neg: int, level: float = 0.95) -> tuple[float, float]:
    """Where the AUROC of an uninformative score falls (normal approximation, Mann–Whitney)."""
    sd = ((n_pos + n_neg + 1) / (12 * n_pos * n_neg)) ** 0.5
    z = {0.9: 1.645, 0.95: 1.96, 0.99: 2.576}.get(level, 1.96)
    return 0.5 - z * sd, 0.5 + z * sd


def dprime(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Separation of the two classes' scores in pooled standard deviations (d′)."""
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    y = torch.as_tensor(labels).flatten() > 0.5
    if int(y.sum()) < 2 or int((~y).sum()) < 2:
        return float("nan")
    pooled = ((s[y].var() + s[~y].var()) / 2).sqrt().clamp_min(1e-12)
    return float((s[y].mean() - s[~y].mean()) / pooled)
