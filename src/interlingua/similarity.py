"""Representation similarity with permutation nulls (pure functions).

Raw similarity scores are not evidence: biased linear CKA is ≈ 0.7 for *independent*
Gaussian matrices at n=256, d=576 vs 640. Use :func:`cka_debiased` (≈ 0 there) and report
every statistic through :func:`permutation_test`, which recomputes it with the rows of one
side shuffled (the shuffled-pairing null) and gives a z-score and a p-value.

Rows of ``X`` and ``Y`` are paired observations (the same aligned word in two models).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def _centre_gram(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x @ x.T


def _hsic_unbiased(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimator (Song et al. 2012) of Gram matrices with zeroed diagonals:

    HSIC_u = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2) · 1ᵀK̃L̃1] / (n(n−3))
    """
    n = k.shape[0]
    k = k.clone().fill_diagonal_(0)
    l = l.clone().fill_diagonal_(0)
    ones_k, ones_l = k.sum(0), l.sum(0)
    trace = (k * l).sum()
    return (trace + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * (ones_k @ ones_l)) / (n * (n - 3))


def cka_debiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA with the unbiased HSIC estimator: ≈ 0 for independent data at any n.

    CKA = HSIC_u(K, L) / sqrt(HSIC_u(K, K) · HSIC_u(L, L)),  K = XXᵀ, L = YYᵀ (columns centred).
    """
    if x.shape[0] != y.shape[0] or x.shape[0] < 4:
        raise ValueError("cka_debiased needs the same number (≥ 4) of paired rows")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    k, l = _centre_gram(x), _centre_gram(y)
    denom = (_hsic_unbiased(k, k) * _hsic_unbiased(l, l)).clamp_min(1e-300).sqrt()
    return float(_hsic_unbiased(k, l) / denom)


def cka_matrix(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """Debiased CKA (:func:`cka_debiased`) of every ``xs[i]`` with every ``ys[j]``: ``[len(xs), len(ys)]``.

    Each Gram matrix is formed once (not once per pair), which is what makes a layer-pair map
    of a dozen layers on each side cheap: len(xs) + len(ys) Gram matrices and one n² product per pair.
    """
    n = xs[0].shape[0]
    if n < 4 or any(z.shape[0] != n for z in (*xs, *ys)):
        raise ValueError("cka_matrix needs the same number (≥ 4) of paired rows in every matrix")

    def prepared(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = z.double() - z.double().mean(0)
        k = _centre_gram(z).fill_diagonal_(0)
        return k, k.sum(0)

    def hsic(a, b) -> torch.Tensor:
        (k, sk), (l, sl) = a, b
        return ((k * l).sum() + sk.sum() * sl.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * (sk @ sl)) / (n * (n - 3))

    px, py = [prepared(x) for x in xs], [prepared(y) for y in ys]
    self_x = torch.stack([hsic(a, a) for a in px])
    self_y = torch.stack([hsic(b, b) for b in py])
    cross = torch.stack([torch.stack([hsic(a, b) for b in py]) for a in px])
    return cross / (self_x[:, None] * self_y[None, :]).clamp_min(1e-300).sqrt()


def cka_biased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Plain (biased) linear CKA, ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F). Misleading at small n; for comparison only."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


def mutual_knn(x: torch.Tensor, y: torch.Tensor, k: int = 10) -> float:
    """Mean overlap of each row's k nearest neighbours (cosine) in X and in Y, in [0, 1]."""
    def knn(z: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.normalize(z.double() - z.double().mean(0), dim=1)
        sim = z @ z.T
        sim.fill_diagonal_(-float("inf"))
        return sim.topk(k, dim=1).indices

    a, b = knn(x), knn(y)
    n = x.shape[0]
    hits = torch.zeros(n, dtype=torch.float64)
    for j in range(k):
        hits += (a.unsqueeze(2) == b[:, j].view(n, 1, 1)).any(dim=1).squeeze(1).double()
    return float((hits / k).mean())


def standardise(x: torch.Tensor, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
    x = x.double()
    mean = x.mean(0) if mean is None else mean
    std = x.std(0).clamp_min(1e-8) if std is None else std
    return (x - mean) / std, mean, std


def ridge_fit(x: torch.Tensor, y: torch.Tensor, lam: float,
              weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression y ≈ x W + b (x, y already standardised or not); returns (W, b).

    Minimises Σ wᵢ ‖yᵢ − xᵢW − b‖² + λ n ‖W‖² with the sample ``weights`` w (normalised to
    mean 1; default all 1). ``lam`` is scaled by the number of rows, so it means the same for
    any amount of data. Unweighted problems with fewer rows than columns are solved in the dual.
    """
    x, y = x.double(), y.double()
    if y.dim() == 1:
        y = y[:, None]
    n, d = x.shape
    w = torch.ones(n, dtype=x.dtype) if weights is None else weights.double() / weights.double().mean()
    mx, my = (w[:, None] * x).sum(0) / w.sum(), (w[:, None] * y).sum(0) / w.sum()
    xc, yc = x - mx, y - my
    reg = lam * n
    if n < d and weights is None:
        alpha = torch.linalg.solve(xc @ xc.T + reg * torch.eye(n, dtype=xc.dtype), yc)
        coef = xc.T @ alpha
    else:
        coef = torch.linalg.solve(xc.T @ (w[:, None] * xc) + reg * torch.eye(d, dtype=xc.dtype), xc.T @ (w[:, None] * yc))
    return coef, my - mx @ coef


def r2_score(y: torch.Tensor, pred: torch.Tensor) -> float:
    """Coefficient of determination, pooled over output columns: 1 − SS_res / SS_tot."""
    y, pred = y.double(), pred.double()
    if y.dim() == 1:
        y, pred = y[:, None], pred.reshape(-1, 1)
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean(0)) ** 2).sum().clamp_min(1e-300))


def ridge_r2_cv(x: torch.Tensor, y: torch.Tensor, *, folds: int = 5, lam: float = 1e-2,
                groups: torch.Tensor | None = None, seed: int = 0) -> float:
    """Cross-validated R² of predicting ``y`` from ``x`` with ridge on standardised inputs.

    ``groups`` (e.g. document ids) keeps all rows of a group in one fold, so neighbouring
    words of one text do not leak between train and test.
    """
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    if groups is None:
        groups = torch.arange(n)
    ids = torch.unique(groups)
    ids = ids[torch.randperm(len(ids), generator=gen)]
    fold_of = torch.empty(int(groups.max()) + 1, dtype=torch.long)
    fold_of[ids] = torch.arange(len(ids)) % folds
    fold = fold_of[groups]
    preds = torch.empty((n, 1 if y.dim() == 1 else y.shape[1]), dtype=torch.float64)
    for f in range(folds):
        tr, te = fold != f, fold == f
        xs, m, s = standardise(x[tr])
        w, b = ridge_fit(xs, y[tr], lam)
        # Held-out inputs are clipped to the training fold's standardised range: a sparse column that
        # fired once, weakly, in training has a tiny std, and a strong held-out value would otherwise
        # be scaled up by orders of magnitude (R² of −800 on sparse codes at n = 512).
        xt = torch.clamp((x[te].double() - m) / s, xs.min(0).values, xs.max(0).values)
        preds[te] = xt @ w + b
    return r2_score(y, preds if y.dim() > 1 else preds[:, 0])


def permutation_test(
    stat: Callable[[torch.Tensor, torch.Tensor], float], x: torch.Tensor, y: torch.Tensor, *,
    n_perm: int = 20, seed: int = 0, level: float = 0.95,
) -> dict:
    """``stat(x, y)`` next to its shuffled-pairing null: the rows of ``y`` permuted.

    Returns the value, the null's mean and central band, a z-score and the permutation
    p-value (with the +1 correction, so it is never 0).
    """
    value = stat(x, y)
    gen = torch.Generator().manual_seed(seed)
    null = [stat(x, y[torch.randperm(y.shape[0], generator=gen)]) for _ in range(n_perm)]
    t = torch.tensor(null, dtype=torch.float64)
    sd = float(t.std()) if len(null) > 1 else 0.0
    alpha = (1 - level) / 2
    return {
        "value": round(value, 6),
        "null_mean": round(float(t.mean()), 6),
        "null_band": [round(float(t.quantile(alpha)), 6), round(float(t.quantile(1 - alpha)), 6)],
        "z": round((value - float(t.mean())) / sd, 3) if sd > 0 else None,
        "p": round((1 + sum(v >= value for v in null)) / (1 + len(null)), 6),
    }
