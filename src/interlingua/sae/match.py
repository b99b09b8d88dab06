"""Matching SAE latents across models (or seeds) by how they fire on the same words.

Given two SAEs and activations of their models read at the same aligned words
(:func:`interlingua.translate.pairs.paired_words`), every latent is a function from words to
activations, and two latents "match" when those functions correlate:

1. Keep latents that fire on at least ``min_fires`` of the words (at most ``max_latents`` per
   side, the most frequent), and correlate every A latent with every B latent (Pearson).
2. Hungarian one-to-one matching maximises the summed correlation.
3. Null: the same with B's rows shuffled (words paired at random), several times; the matched
   correlations of real data must clear it.
4. Report the matched-correlation distribution, the fraction of A's kept latents matched above
   0.5, and, with a second SAE on A (another seed), the same fraction between seeds: the ceiling
   against which a cross-model fraction reads (seeds of one model share only ~30–53% in
   published work).

:class:`MatchResult` holds one matching (its :class:`MatchSummary` is what is reported);
:class:`SAEMatch` is what ``interlingua sae match`` prints and saves (``sae_match.json``), rendered
by :mod:`interlingua.report.sae`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from interlingua.errors import InterlinguaError
from interlingua.results import Record, record
from interlingua.sae.model import SparseAutoencoder
from interlingua.toy.metrics import _hungarian_min


@torch.no_grad()
def latent_matrix(sae: SparseAutoencoder, x: Tensor, batch: int = 4096) -> Tensor:
    """Dense latent activations ``[n, d_sae]`` (float32) of ``x``; use on modest ``n``."""
    out = torch.zeros(len(x), sae.d_sae, dtype=torch.float32)
    for s in range(0, len(x), batch):
        code = sae.encode(x[s:s + batch].to(sae.W_dec.dtype))
        out[s:s + batch].scatter_add_(1, code.indices, code.values.float())
    return out


def select_latents(z: Tensor, min_fires: int, max_latents: int) -> Tensor:
    """Indices of latents firing on at least ``min_fires`` rows, the ``max_latents`` most frequent."""
    fires = (z > 0).sum(0)
    keep = torch.nonzero(fires >= min_fires).squeeze(1)
    order = torch.argsort(fires[keep], descending=True, stable=True)
    return keep[order[:max_latents]].sort().values


def correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of every column of ``a`` [n, p] with every column of ``b`` [n, q] → [p, q]."""
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    a = a / a.norm(dim=0).clamp_min(1e-12)
    b = b / b.norm(dim=0).clamp_min(1e-12)
    return a.T @ b


def hungarian(corr: Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching maximising summed correlation: ``(rows, cols, matched correlations)``."""
    c = corr.numpy()
    rows, cols = _hungarian_min(-c)
    return rows, cols, c[rows, cols]


@record
class MatchSummary(Record):
    """The matched-correlation distribution of one matching against its shuffled-word null.

    ``fraction_above`` is the share of A's kept latents matched above ``threshold``;
    ``null_fraction_above`` the same per shuffle. Histograms count correlations in the bins
    ``histogram_edges`` (observed: ``histogram``, every shuffle pooled: ``null_histogram``).
    """

    n_latents_a: int = 0
    n_matched: int = 0
    mean_matched_corr: float = 0.0
    quantiles: dict[str, float] = field(default_factory=dict)
    fraction_above: float = 0.0
    threshold: float = 0.5
    null_mean_matched_corr: float | None = None
    null_quantiles: dict[str, float] = field(default_factory=dict)
    null_fraction_above: list[float] = field(default_factory=list)
    null_fraction_above_max: float | None = None
    histogram_edges: list[float] = field(default_factory=list)
    histogram: list[int] = field(default_factory=list)
    null_histogram: list[int] = field(default_factory=list)
    n_latents_b: int = 0
    n_words: int = 0

    @property
    def p_value(self) -> float | None:
        """Share of shuffles whose fraction above the threshold reaches the observed one, (1 + k) / (1 + n)."""
        if not self.null_fraction_above:
            return None
        k = sum(n >= self.fraction_above for n in self.null_fraction_above)
        return (1 + k) / (1 + len(self.null_fraction_above))


@record
class LatentPair(Record):
    """A matched pair: latent ``a`` of A, latent ``b`` of B and their correlation."""

    a: int = 0
    b: int = 0
    corr: float = 0.0


@dataclass
class MatchResult:
    """Matched latents of A and B with their correlations, and the shuffled-pairing null."""

    latents_a: list[int]
    latents_b: list[int]
    matched_corr: list[float]
    null_matched_corr: list[list[float]]
    summary: MatchSummary = field(default_factory=MatchSummary)

    def pairs(self, top: int = 20) -> list[LatentPair]:
        """The best-correlated matched pairs."""
        order = np.argsort(self.matched_corr)[::-1][:top]
        return [LatentPair(a=self.latents_a[i], b=self.latents_b[i], corr=round(self.matched_corr[i], 4))
                for i in order]

    def matched(self) -> Matched:
        return Matched(a=list(self.latents_a), b=list(self.latents_b), corr=list(self.matched_corr))


@record
class MatchSide(Record):
    """One side of a matching: the model, its hook and the SAE's directory."""

    model: str = ""
    hook: str = ""
    sae: str = ""


@record
class Matched(Record):
    """Every matched pair, as three parallel lists (saved to ``sae_match.json``, not printed)."""

    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    corr: list[float] = field(default_factory=list)


@record
class SAEMatch(Record):
    """What ``interlingua sae match`` reports (``--json``) and saves (``sae_match.json``, with ``matched``).

    ``seed_ceiling`` and ``cross_over_ceiling`` are there only with a second SAE on A
    (``cross_over_ceiling`` is then null where the ceiling is 0).
    """

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"seed_ceiling", "matched"})

    a: MatchSide | None = None
    b: MatchSide | None = None
    texts: int = 0
    cross: MatchSummary | None = None
    top_pairs: list[LatentPair] = field(default_factory=list)
    seed_ceiling: MatchSummary | None = None
    cross_over_ceiling: float | None = None
    matched: Matched | None = None

    def to_json(self) -> dict:
        out = super().to_json()
        if self.seed_ceiling is None and self.cross_over_ceiling is None:  # no second SAE on A: no key
            out.pop("cross_over_ceiling", None)
        return out

    def printed(self) -> dict:
        """The JSON ``--json`` prints: everything but the full list of matched pairs."""
        out = self.to_json()
        out.pop("matched", None)
        return out


def _summary(matched: np.ndarray, nulls: list[np.ndarray], n_a: int, threshold: float) -> MatchSummary:
    null_all = np.concatenate(nulls) if nulls else np.zeros(0)
    null_frac = [float((n > threshold).sum() / n_a) for n in nulls]
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    return MatchSummary.from_json({
        "n_latents_a": n_a,
        "n_matched": int(len(matched)),
        "mean_matched_corr": float(matched.mean()) if len(matched) else 0.0,
        "quantiles": {str(k): float(np.quantile(matched, k)) for k in q} if len(matched) else {},
        "fraction_above": float((matched > threshold).sum() / n_a) if n_a else 0.0,
        "threshold": threshold,
        "null_mean_matched_corr": float(null_all.mean()) if len(null_all) else None,
        "null_quantiles": {str(k): float(np.quantile(null_all, k)) for k in q} if len(null_all) else {},
        "null_fraction_above": null_frac,
        "null_fraction_above_max": max(null_frac) if null_frac else None,
        "histogram_edges": np.linspace(-0.2, 1.0, 13).round(2).tolist(),
        "histogram": np.histogram(matched, bins=np.linspace(-0.2, 1.0, 13))[0].tolist(),
        "null_histogram": np.histogram(null_all, bins=np.linspace(-0.2, 1.0, 13))[0].tolist(),
    })


def match_latents(sae_a: SparseAutoencoder, x_a: Tensor, sae_b: SparseAutoencoder, x_b: Tensor, *,
                  min_fires: int = 5, max_latents: int = 2048, threshold: float = 0.5, n_null: int = 3,
                  groups: Tensor | None = None, seed: int = 0) -> MatchResult:
    """Match latents of ``sae_a`` on ``x_a`` with those of ``sae_b`` on ``x_b`` (row ``i`` of both is the
    same word). ``groups`` (e.g. document ids) restricts the null's shuffling to within groups, so it
    keeps each document's word statistics and breaks only the word-level pairing."""
    if len(x_a) != len(x_b):
        raise InterlinguaError(f"A has {len(x_a)} rows and B {len(x_b)}; matching needs the same aligned words.")
    if len(x_a) < 10:
        raise InterlinguaError(f"only {len(x_a)} aligned words; give more text to match latents on.")
    za, zb = latent_matrix(sae_a, x_a), latent_matrix(sae_b, x_b)
    keep_a, keep_b = select_latents(za, min_fires, max_latents), select_latents(zb, min_fires, max_latents)
    if len(keep_a) == 0 or len(keep_b) == 0:
        raise InterlinguaError(f"no latents fire on at least {min_fires} of the {len(x_a)} words in "
                               f"{'A' if len(keep_a) == 0 else 'B'}; give more text or lower --min-fires.")
    za, zb = za[:, keep_a], zb[:, keep_b]
    rows, cols, matched = hungarian(correlation(za, zb))
    nulls = []
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_null):
        perm = _shuffle(len(zb), groups, g)
        nulls.append(hungarian(correlation(za, zb[perm]))[2])
    result = MatchResult(latents_a=keep_a[rows].tolist(), latents_b=keep_b[cols].tolist(),
                         matched_corr=matched.tolist(), null_matched_corr=[n.tolist() for n in nulls])
    result.summary = _summary(matched, nulls, len(keep_a), threshold)
    result.summary.n_latents_b = int(len(keep_b))
    result.summary.n_words = int(len(x_a))
    return result


def _shuffle(n: int, groups: Tensor | None, g: torch.Generator) -> Tensor:
    if groups is None:
        return torch.randperm(n, generator=g)
    perm = torch.arange(n)
    for grp in torch.unique(groups):
        where = torch.nonzero(groups == grp).squeeze(1)
        perm[where] = where[torch.randperm(len(where), generator=g)]
    return perm
