"""Null distributions as hypothesis tests, and paired bootstrap intervals (pure functions).

A null here is a *test*: its distribution is built from enough draws for the p-value it
claims (p ≥ 1/(draws + 1), so ≥ 200 draws for p ≤ 0.01), and the real result is placed in it
with ``p = (1 + #{null ≥ real}) / (1 + draws)``. The mean of a null says nothing: a readout
fitted to noise has a random sign, so that mean sits at chance whatever the data.

Words of one document are dependent, so nulls never permute single words: they reassign
whole documents (:func:`document_permutations`), keeping the order of words inside each.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interlingua.errors import InterlinguaError

MIN_DRAWS = 200  # smallest null for a p-value of 0.01 (p ≥ 1/201)
ALPHA = 0.01


def document_permutations(doc: torch.Tensor, draws: int, seed: int = 0) -> torch.Tensor:
    """``[draws, n]`` row indices that give each document the scores of *another* document.

    Row ``i`` of document ``d`` receives the value of row ``start[π(d)] + (rank_i + o_d) mod
    len[π(d)]``: the word sequence of document π(d), started at a random offset ``o_d`` and
    wrapped to the length of ``d``. π is a random derangement (no document keeps its own
    values), so every row is paired with a word of another document while the dependence of
    neighbouring words is kept. ``doc`` must list documents in contiguous blocks.
    """
    doc = torch.as_tensor(doc, dtype=torch.long)
    ids, counts = torch.unique_consecutive(doc, return_counts=True)
    if len(torch.unique(ids)) != len(ids):
        raise InterlinguaError("document_permutations needs the rows of each document to be contiguous.")
    m = len(ids)
    if m < 2:
        raise InterlinguaError("a permutation null needs at least two documents; give more shared text.")
    starts = torch.cumsum(counts, 0) - counts
    block = torch.repeat_interleave(torch.arange(m), counts)
    rank = torch.arange(len(doc)) - starts[block]
    gen = torch.Generator().manual_seed(seed)
    perm = torch.rand(draws, m, generator=gen).argsort(1)
    while True:  # redraw the rows that left a document in place (a random derangement per row)
        fixed = (perm == torch.arange(m)).any(1)
        if not bool(fixed.any()):
            break
        perm[fixed] = torch.rand(int(fixed.sum()), m, generator=gen).argsort(1)
    offset = torch.randint(0, 1 << 30, (draws, m), generator=gen)
    src = perm[:, block]
    return starts[src] + (rank + offset[:, block]) % counts[src]


def p_value(real: float, null: Sequence[float] | torch.Tensor) -> float:
    """One-sided permutation p-value of ``real`` against ``null`` (large is extreme), never 0."""
    t = torch.as_tensor(null, dtype=torch.float64)
    t = t[~torch.isnan(t)]
    if len(t) == 0 or real != real:
        return float("nan")
    return float((1 + (t >= real).sum()) / (1 + len(t)))


def null_summary(real: float, null: torch.Tensor, level: float = 0.95) -> dict:
    """The null's draws summarised for a report: p-value, a central band and the band's true coverage.

    The band is made of order statistics ``[X_(a), X_(b)]`` of the ``n`` draws; it covers a new
    null draw with probability ``(b − a) / (n + 1)``, which is reported as ``band_coverage``
    (a "95 %" band from 4 draws covers 60 %).
    """
    t = torch.as_tensor(null, dtype=torch.float64)
    t = t[~torch.isnan(t)].sort().values
    n = len(t)
    if n == 0:
        return {"p_value": None, "draws": 0}
    a = max(1, int(round((1 - level) / 2 * (n + 1))))
    b = min(n, n + 1 - a)
    return {"p_value": round(p_value(real, t), 6), "draws": n,
            "band": [round(float(t[a - 1]), 4), round(float(t[b - 1]), 4)],
            "band_coverage": round((b - a) / (n + 1), 4),
            "max": round(float(t[-1]), 4), "median": round(float(t[n // 2]), 4)}


def bootstrap_counts(groups: torch.Tensor, n_boot: int, seed: int = 0) -> torch.Tensor:
    """``[n_boot, n]`` multiplicities of every row in resamples of whole groups (e.g. both texts of a pair).

    One matrix serves several statistics, which makes their intervals *paired*; counts rather
    than index lists let a statistic be computed for all resamples at once.
    """
    _, inverse = torch.unique(torch.as_tensor(groups), return_inverse=True)
    n_groups = int(inverse.max()) + 1
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(n_groups, (n_boot, n_groups), generator=gen)
    per_group = torch.zeros(n_boot, n_groups).scatter_add_(1, picks, torch.ones(n_boot, n_groups))
    return per_group[:, inverse]


def auroc_resampled(scores: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """AUROC of ``scores`` against binary ``labels`` in every resample ``counts`` [B, n]: ``[B]``.

    AUROC = Σ c_i c_j [s_i > s_j] (ties ½) / (Σ c_i · Σ c_j) over positives i and negatives j, from
    one comparison matrix of the original items; NaN where a resample holds one class only.
    """
    y = torch.as_tensor(labels).flatten() > 0.5
    s = scores.double().flatten()
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return torch.full((counts.shape[0],), float("nan"), dtype=torch.float64)
    cmp = (pos[:, None] > neg[None, :]).double() + 0.5 * (pos[:, None] == neg[None, :]).double()
    cp, cn = counts[:, y].double(), counts[:, ~y].double()
    num = ((cp @ cmp) * cn).sum(1)
    den = cp.sum(1) * cn.sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.tensor(float("nan"), dtype=torch.float64))


def percentile_interval(values: Sequence[float] | torch.Tensor, level: float = 0.95) -> list[float] | None:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    t = t[~torch.isnan(t)]
    if len(t) == 0:
        return None
    a = (1 - level) / 2
    return [round(float(t.quantile(a)), 4), round(float(t.quantile(1 - a)), 4)]
