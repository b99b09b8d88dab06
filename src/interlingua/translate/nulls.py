"""Null distributions as hypothesis tests, and paired bootstrap intervals (pure functions).

A null here is a *test*: its distribution is built from enough draws for the p-value it
claims (p ≥ 1/(draws + 1), so ≥ 200 draws for p ≤ 0.01), and the real result is placed in it
with ``p = (1 + #{null ≥ real}) / (1 + draws)``. The mean of a null says nothing: a readout
fitted to noise has a random sign, so that mean sits at chance whatever the data.

Words of one document are dependent, so nulls never permute single words: they reassign
whole documents (:func:`document_permutations`), keeping the order of words inside each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
    out = torch.empty(draws, len(doc), dtype=torch.long)
    for k in range(draws):
        while True:
            perm = torch.randperm(m, generator=gen)
            if not bool((perm == torch.arange(m)).any()):
                break
        offset = torch.randint(0, 1 << 30, (m,), generator=gen)
        src = perm[block]
        out[k] = starts[src] + (rank + offset[block]) % counts[src]
    return out


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


def group_members(groups: torch.Tensor) -> list[torch.Tensor]:
    """Row indices of each group (in order of the sorted group ids)."""
    _, inverse = torch.unique(torch.as_tensor(groups), return_inverse=True)
    order = torch.argsort(inverse, stable=True)
    counts = torch.bincount(inverse)
    return list(torch.split(order, counts.tolist()))


def bootstrap_draws(groups: torch.Tensor, n_boot: int, seed: int = 0) -> list[torch.Tensor]:
    """``n_boot`` resamples of row indices, whole groups (e.g. both texts of a pair) at a time.

    One list of resamples serves several statistics, which makes their intervals *paired*.
    """
    members = group_members(groups)
    gen = torch.Generator().manual_seed(seed)
    return [torch.cat([members[int(g)] for g in torch.randint(len(members), (len(members),), generator=gen)])
            for _ in range(n_boot)]


def percentile_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    t = torch.as_tensor(list(values), dtype=torch.float64)
    t = t[~torch.isnan(t)]
    if len(t) == 0:
        return None
    a = (1 - level) / 2
    return [round(float(t.quantile(a)), 4), round(float(t.quantile(1 - a)), 4)]


def bootstrap(stat: Callable[[torch.Tensor], float], draws: Sequence[torch.Tensor], level: float = 0.95
              ) -> list[float] | None:
    """Percentile interval of ``stat(indices)`` over the resamples ``draws`` (NaN draws dropped)."""
    return percentile_interval([stat(idx) for idx in draws], level)

