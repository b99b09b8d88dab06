"""Metrics for toy models with known features. Each docstring states its formula.

Notation: ``W ∈ ℝ^{n×m}`` holds feature ``i``'s embedding ``W_i`` as row ``i``;
``Ŵ_i = W_i / ‖W_i‖``. ``G`` holds true feature directions and ``L`` learned ones, as rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_EPS = 1e-12


def feature_dimensionality(W: Tensor) -> Tensor:
    """Per-feature dimensionality (Elhage et al.; Scherlis et al.'s capacity):

    ``D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² = (W_i·W_i)² / Σ_j (W_i·W_j)²`` ∈ [0, 1], with ``Σ_i D_i ≤ m``.

    Invariant to ``W → cW`` and to rotations ``W → W R``. A zero row gets ``D_i = 0``. Applied to
    the hidden vectors of a dataset it is Henighan et al.'s data-point dimensionality.
    """
    gram = W.double() @ W.double().T
    diag = gram.diagonal()
    return (diag.pow(2) / gram.pow(2).sum(1).clamp(min=_EPS)).to(W.dtype)


def datapoint_dimensionality(H: Tensor) -> Tensor:
    """Data-point dimensionality (Henighan et al. 2023): ``D_t = ‖h_t‖⁴ / Σ_s (h_t·h_s)²``.

    ``H`` holds the hidden vectors ``h_t = W x_t`` of the training points as rows.
    """
    return feature_dimensionality(H)


def feature_norms(W: Tensor) -> Tensor:
    """``‖W_i‖``; a feature counts as represented when ``‖W_i‖ > 0.5`` (tied, MSE-scaled models only)."""
    return W.norm(dim=1)


def superposition(W: Tensor) -> Tensor:
    """Interference felt by feature ``i``: ``s_i = Σ_{j≠i} (Ŵ_i·W_j)²``."""
    unit = W / W.norm(dim=1, keepdim=True).clamp(min=_EPS)
    proj = (unit @ W.T).pow(2)
    return proj.sum(1) - proj.diagonal()


def dimensions_per_feature(W: Tensor) -> float:
    """Elhage et al.'s ``D* = m / ‖W‖²_F``.

    Scales as ``1/c²`` under ``W → cW``, so it means something only where the task fixes the scale
    (tied weights, MSE reconstruction).
    """
    return W.shape[1] / float(W.pow(2).sum().clamp(min=_EPS))


def frobenius_features_per_dimension(W: Tensor) -> float:
    """The Frobenius measure ``‖W‖²_F / m`` (= ``1/D*``); *not* scale invariant: ``c²`` under ``W → cW``."""
    return float(W.pow(2).sum()) / W.shape[1]


def features_per_dimension(W: Tensor) -> float:
    """Scale- and rotation-invariant features per dimension: ``Σ_i D_i / Σ_i D_i²``.

    This is one over the ``D``-weighted mean of ``D_i``; it equals ``k/m`` when ``k`` features share
    ``m`` dimensions equally (polytopes, tegum products) and so agrees with ``1/D*`` in Elhage's
    regime. Report it together with ``n_rep``: for a rotation-degenerate dense optimum the
    weight spreads over all features and the two measures part.
    """
    d = feature_dimensionality(W).double()
    return float(d.sum() / d.pow(2).sum().clamp(min=_EPS))


def canonicalise_neurons(W_in: Tensor, W_out: Tensor, b_in: Tensor | None = None
                         ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Fix the per-neuron rescaling gauge of ``y = W_out ReLU(W_in x + b_in)``.

    ``W_in → Λ W_in``, ``b_in → Λ b_in``, ``W_out → W_out Λ⁻¹`` (``Λ`` positive diagonal) leaves the
    function unchanged. Balance each hidden unit ``j``: with ``a_j = ‖(W_in[j], b_in[j])‖`` and
    ``o_j = ‖W_out[:, j]‖`` scale by ``s_j = √(o_j / a_j)``, so both become ``√(a_j o_j)``, which
    does not depend on ``Λ``. Returns ``(W_in', W_out', b_in')``.
    """
    incoming = W_in.pow(2).sum(1)
    if b_in is not None:
        incoming = incoming + b_in.pow(2)
    a = incoming.sqrt().clamp(min=_EPS)
    o = W_out.norm(dim=0).clamp(min=_EPS)
    s = (o / a).sqrt()
    return W_in * s[:, None], W_out / s[None, :], None if b_in is None else b_in * s


def welch_bound(n: int, m: int) -> float:
    """Lower bound on the largest ``|cos|`` among ``n`` unit vectors in ``ℝᵐ``: ``√((n−m) / (m(n−1)))``."""
    if n <= m:
        return 0.0
    return math.sqrt((n - m) / (m * (n - 1)))


@dataclass(frozen=True)
class Interference:
    """Statistics of ``c_ij = Ŵ_i·Ŵ_j`` over pairs ``i ≠ j`` of the features considered.

    ``moments[α] = E|c|^α``; ``welch`` is the Welch bound for that many vectors in ``m`` dims, and
    ``random_mean_square = 1/m`` is ``E[c²]`` for random unit vectors.
    """

    n: int
    m: int
    max_abs: float
    moments: dict[float, float]
    histogram: list[int]
    bin_edges: list[float]
    welch: float
    random_mean_square: float


def interference(W: Tensor, mask: Tensor | None = None, alphas: tuple[float, ...] = (1.0, 2.0, 4.0),
                 bins: int = 20) -> Interference:
    """Interference statistics of the rows of ``W`` (those selected by ``mask``, e.g. represented)."""
    if mask is not None:
        W = W[mask]
    n, m = W.shape
    unit = W.double() / W.double().norm(dim=1, keepdim=True).clamp(min=_EPS)
    c = (unit @ unit.T)[~torch.eye(n, dtype=torch.bool)].abs()
    if c.numel() == 0:
        c = torch.zeros(1, dtype=torch.float64)
    hist = torch.histc(c, bins=bins, min=0.0, max=1.0)
    return Interference(n=n, m=m, max_abs=float(c.max()),
                        moments={a: float(c.pow(a).mean()) for a in alphas},
                        histogram=[int(h) for h in hist], bin_edges=torch.linspace(0, 1, bins + 1).tolist(),
                        welch=welch_bound(n, m), random_mean_square=1.0 / m)


def cosine_matrix(A: Tensor, B: Tensor) -> Tensor:
    """``C_ij = cos(A_i, B_j)`` for the rows of ``A`` and ``B``."""
    a = A.double() / A.double().norm(dim=1, keepdim=True).clamp(min=_EPS)
    b = B.double() / B.double().norm(dim=1, keepdim=True).clamp(min=_EPS)
    return a @ b.T


def mmcs(truth: Tensor, learned: Tensor, absolute: bool = False) -> float:
    """Mean max cosine similarity (Sharkey et al.): ``MMCS(G→L) = (1/N) Σ_i max_j cos(g_i, l_j)``.

    Swap the arguments for the reverse direction ``MMCS(L→G)`` (how many learned atoms are spurious).
    Use ``absolute=True`` (``|cos|``) for sign-ambiguous methods such as PCA.
    """
    c = cosine_matrix(truth, learned)
    return float((c.abs() if absolute else c).max(1).values.mean())


def recovery_rate(truth: Tensor, learned: Tensor, threshold: float = 0.9, absolute: bool = False) -> float:
    """Share of true features with a learned match: ``#{i : max_j cos(g_i, l_j) > τ} / N``."""
    c = cosine_matrix(truth, learned)
    return float(((c.abs() if absolute else c).max(1).values > threshold).double().mean())


def _hungarian_min(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # pragma: no cover - scipy is a dependency; kept for bare environments
        return _hungarian_fallback(cost)
    return linear_sum_assignment(cost)


def _hungarian_fallback(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment by the O(n²m) shortest-augmenting-path method with potentials."""
    transposed = cost.shape[0] > cost.shape[1]
    a = cost.T if transposed else cost
    n, m = a.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=int)  # owner[j] = row (1-based) assigned to column j; column 0 is a sentinel
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        dist, prev, used = np.full(m + 1, np.inf), np.zeros(m + 1, dtype=int), np.zeros(m + 1, dtype=bool)
        while owner[j0] != 0:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = a[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < dist[1:])
            dist[1:][better], prev[1:][better] = reduced[better], j0
            j1 = 1 + int(np.argmin(np.where(free, dist[1:], np.inf)))
            delta = dist[j1]
            u[owner[used]] += delta
            v[used] -= delta
            dist[1:][free] -= delta
            j0 = j1
        while j0:
            j1 = prev[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    return (cols, rows) if transposed else (rows, cols)


def hungarian_match(score: Tensor) -> tuple[Tensor, Tensor]:
    """One-to-one matching that maximises the total score: ``argmax_π Σ_j S_{j,π(j)}``.

    ``score`` is ``(a, b)``; ``min(a, b)`` pairs come back as index tensors ``(rows, cols)``,
    sorted by row. Solved exactly (Hungarian / Jonker–Volgenant).
    """
    rows, cols = _hungarian_min(-score.double().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def matched_mcc(truth: Tensor, learned: Tensor) -> float:
    """Hungarian-matched mean correlation: ``max_π (1/N) Σ_i |cos(g_i, l_π(i))|`` over one-to-one ``π``.

    Unlike MMCS it penalises one learned atom standing in for several true features. With fewer
    learned atoms than true features, unmatched features count as 0.
    """
    c = cosine_matrix(truth, learned).abs()
    rows, cols = hungarian_match(c)
    return float(c[rows, cols].sum() / truth.shape[0])


def correlation_matrix(X: Tensor, Y: Tensor) -> Tensor:
    """Pearson correlation of every column of ``X`` with every column of ``Y`` (paired rows):

    ``C_jl = Σ_t (x_tj − x̄_j)(y_tl − ȳ_l) / (‖x_j − x̄_j‖ ‖y_l − ȳ_l‖)``; a constant column (a
    dead unit) correlates 0 with everything.
    """
    x = X.double() - X.double().mean(0)
    y = Y.double() - Y.double().mean(0)
    nx, ny = x.norm(dim=0), y.norm(dim=0)
    c = (x.T @ y) / (nx[:, None] * ny[None, :]).clamp(min=_EPS)
    return c * ((nx > _EPS)[:, None] & (ny > _EPS)[None, :])


def unit_selectivity(profiles: Tensor) -> Tensor:
    """How close each unit is to responding to a single feature: ``σ_j = max_i r_ji / ‖r_j‖₂``.

    ``profiles[j, i] = r_ji ≥ 0`` is unit ``j``'s activation when only true feature ``i`` is on
    (at value 1). ``σ_j`` is the cosine between ``r_j`` and the nearest one-hot profile ``e_i``:
    1 for a unit that responds to one feature only, ``1/√N`` for one that responds equally to all;
    0 for a unit that responds to none (dead on single features).
    """
    r = profiles.double().clamp(min=0)
    norm = r.norm(dim=1)
    return torch.where(norm > _EPS, r.max(1).values / norm.clamp(min=_EPS), torch.zeros_like(norm))


def represented_features(profiles: Tensor, kappa: float = 0.9) -> Tensor:
    """Which true feature each unit represents, from the ground truth: ``R_ji = [r_ji / ‖r_j‖₂ ≥ κ]``.

    A unit represents feature ``i`` when its single-feature response profile is within angle
    ``arccos κ`` of the one-hot profile ``e_i`` (for ``κ ≥ 1/√2`` at most one ``i`` qualifies).
    Returns a ``(units, N)`` boolean matrix; a polysemantic or dead unit has an all-false row.
    """
    r = profiles.double().clamp(min=0)
    norm = r.norm(dim=1, keepdim=True)
    return (r / norm.clamp(min=_EPS) >= kappa) & (norm > _EPS)


def monosemantic_fraction(profiles: Tensor, kappa: float = 0.9) -> float:
    """Share of live units (any single-feature response) that represent one feature at ``κ``."""
    live = profiles.clamp(min=0).sum(1) > _EPS
    if not live.any():
        return 0.0
    return float(represented_features(profiles, kappa)[live].any(1).double().mean())


def feature_coverage(profiles: Tensor, kappa: float = 0.9) -> float:
    """Share of true features that have at least one unit representing them (``∃ j: R_ji``)."""
    return float(represented_features(profiles, kappa).any(0).double().mean())


@dataclass(frozen=True)
class Correspondence:
    """Precision and recall of claimed one-to-one pairs ``K`` against true pairs ``T``.

    ``precision = |K ∩ T| / |K|``; ``recall = |K ∩ T| / ν(T)``, where ``ν(T)`` is the size of a
    maximum one-to-one matching inside ``T`` (the most correct pairs any one-to-one claim could
    contain). Undefined values (nothing claimed, nothing true) are ``None``.
    """

    claimed: int
    correct: int
    achievable: int
    precision: float | None
    recall: float | None


def correspondence_scores(rows: Tensor, cols: Tensor, truth: Tensor) -> Correspondence:
    """Score claimed pairs ``(rows[t], cols[t])`` against the boolean true-pair matrix ``truth``."""
    correct = int(truth[rows, cols].sum()) if len(rows) else 0
    tr, tc = hungarian_match(truth.double())
    achievable = int(truth[tr, tc].sum())
    return Correspondence(claimed=len(rows), correct=correct, achievable=achievable,
                          precision=correct / len(rows) if len(rows) else None,
                          recall=correct / achievable if achievable else None)


def feature_correspondence_scores(rows: Tensor, cols: Tensor, rep_a: Tensor, rep_b: Tensor) -> Correspondence:
    """Feature-level precision and recall of claimed unit pairs ``(j, l)``.

    ``rep_a`` (``(units_A, N)``) and ``rep_b`` say which true feature each unit represents (see
    :func:`represented_features`). A pair makes a *feature claim* when either unit represents a
    feature; the claim is correct when both represent the same one (``∃ i: R^A_ji ∧ R^B_li``).
    ``precision = correct claims / claims``; ``recall = |{i recovered by a correct claim}| /
    |{i represented in both models}|`` (``achievable`` is that denominator).
    """
    ra, rb = rep_a[rows], rep_b[cols]
    claims = ra.any(1) | rb.any(1)
    hits = ra & rb
    ok = hits.any(1)
    recovered = int(hits.any(0).sum()) if len(rows) else 0
    achievable = int((rep_a.any(0) & rep_b.any(0)).sum())
    n_claims = int(claims.sum())
    return Correspondence(claimed=n_claims, correct=int(ok.sum()), achievable=achievable,
                          precision=int(ok.sum()) / n_claims if n_claims else None,
                          recall=recovered / achievable if achievable else None)


@dataclass(frozen=True)
class SAEHealth:
    """``l0 = E‖c‖₀``; ``dead`` = share of latents that never fired; ``fvu = Σ‖x−x̂‖² / Σ‖x−x̄‖²``;
    ``shrinkage = E‖x̂‖ / E‖x‖``."""

    l0: float
    dead: float
    fvu: float
    shrinkage: float


def sae_health(x: Tensor, codes: Tensor, x_hat: Tensor) -> SAEHealth:
    """Health of a dictionary on a held-out sample (``codes``: ``(batch, k)`` latent activations)."""
    fired = codes > 0
    fvu = (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp(min=_EPS)
    return SAEHealth(l0=float(fired.sum(1).double().mean()), dead=float((~fired.any(0)).double().mean()),
                     fvu=float(fvu), shrinkage=float(x_hat.norm(dim=1).mean() / x.norm(dim=1).mean()))


@dataclass(frozen=True)
class BiasStats:
    """Biases of represented features: their ``mean``, and ``b_i / σ_pre,i``, ``b_i`` relative to the
    standard deviation ``σ_pre,i = σ ‖W W_i‖`` of the noise reaching feature ``i``'s pre-activation
    (``(W Wᵀ ε)_i`` for input noise ``ε ~ N(0, σ²I)``)."""

    mean: float
    represented: int
    relative_to_noise: list[float]


def bias_statistics(W: Tensor, b: Tensor, noise_std: float = 0.0, threshold: float = 0.5) -> BiasStats:
    """Bias statistics of a tied model ``ReLU(W Wᵀ x + b)`` over features with ``‖W_i‖ > threshold``."""
    rep = feature_norms(W) > threshold
    pre_noise = noise_std * (W @ W.T).norm(dim=1)
    rel = (b / pre_noise.clamp(min=_EPS))[rep] if noise_std > 0 else torch.zeros(0)
    return BiasStats(mean=float(b[rep].mean()) if rep.any() else 0.0, represented=int(rep.sum()),
                     relative_to_noise=[float(r) for r in rel])


def plateau_time(times: Tensor, progress: Tensor, fraction: float = 0.5) -> float:
    """First time at which ``progress`` (e.g. a mode's learned strength over its target) reaches ``fraction``.

    Returns ``inf`` if it never does.
    """
    hit = torch.nonzero(progress >= fraction)
    return float(times[hit[0, 0]]) if len(hit) else math.inf
