"""Readout selection: the moment-based cross-validation equals brute force, and it chooses sensibly."""

import pytest
import scipy.stats
import torch

from interlingua.errors import InterlinguaError
from interlingua.similarity import ridge_fit
from interlingua.translate.readout import document_folds, select_ridge


def _data(n_docs=40, per_doc=30, d=12, seed=0, signal_hook="h1"):
    g = torch.Generator().manual_seed(seed)
    n = n_docs * per_doc
    groups = torch.arange(n_docs).repeat_interleave(per_doc)
    xs = {h: torch.randn(n, d, generator=g) * torch.linspace(0.5, 3, d) + 2 for h in ("h0", "h1", "h2")}
    w = torch.randn(d, generator=g)
    y = xs[signal_hook] @ w + 0.3 * torch.randn(n, generator=g)
    return xs, y, groups


def test_document_folds_keep_documents_whole():
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 5])
    fold = document_folds(groups, 3)
    for g in groups.unique():
        assert len(fold[groups == g].unique()) == 1
    assert set(fold.tolist()) == {0, 1, 2}
    with pytest.raises(InterlinguaError, match="at least 7 documents"):
        document_folds(groups, 7)


def test_cross_validated_error_equals_brute_force():
    xs, y, groups = _data()
    w = torch.where(y > 0, 3.0, 1.0)
    targets = torch.stack([y, y.flip(0), torch.randn(len(y))], 1)
    lams = (1e-3, 1e-1, 10.0)
    sel = select_ridge(xs, targets, groups, lams=lams, folds=4, weights=w)
    fold = document_folds(groups, 4)
    wn = (w / w.mean()).double()
    for h, name in enumerate(xs):
        x = xs[name].double()
        z = (x - x.mean(0)) / x.std(0)
        for li, lam in enumerate(lams):
            sse = torch.zeros(3, dtype=torch.float64)
            pred = torch.empty(len(y), 3, dtype=torch.float64)
            for f in range(4):
                tr, va = fold != f, fold == f
                coef, b = _weighted_ridge(z[tr], targets[tr].double(), lam, wn[tr])
                pred[va] = z[va] @ coef + b
                sse += (wn[va][:, None] * (targets[va].double() - pred[va]) ** 2).sum(0)
            yd = targets.double()
            ybar = (wn[:, None] * yd).sum(0) / wn.sum()
            r2 = 1 - sse / (wn[:, None] * (yd - ybar) ** 2).sum(0)
            torch.testing.assert_close(sel.cv_r2[h, li], r2, rtol=1e-4, atol=1e-4)
            rho = torch.tensor([scipy.stats.spearmanr(pred[:, j], yd[:, j]).statistic for j in range(3)],
                               dtype=torch.float64)
            torch.testing.assert_close(sel.cv_rho[h, li], rho, rtol=1e-3, atol=1e-3)
    # the choice is the (hook, λ) of the largest cross-validated rank correlation
    flat = sel.cv_rho.reshape(-1, 3).argmax(0)
    assert sel.hook_index.tolist() == (flat // len(lams)).tolist() and sel.lam_index.tolist() == (flat % len(lams)).tolist()


def _weighted_ridge(z, y, lam, w):
    """Σ w (y − z c − b)² + λ·n_rows·‖c‖², w as given (not renormalised)."""
    mz, my = (w[:, None] * z).sum(0) / w.sum(), (w[:, None] * y).sum(0) / w.sum()
    zc, yc = z - mz, y - my
    coef = torch.linalg.solve(zc.T @ (w[:, None] * zc) + lam * w.sum() * torch.eye(z.shape[1], dtype=z.dtype),
                              zc.T @ (w[:, None] * yc))
    return coef, my - mz @ coef


def test_selection_finds_the_informative_hook_and_refits_on_all_rows():
    xs, y, groups = _data(signal_hook="h2")
    sel = select_ridge(xs, y, groups)
    assert sel.hook(0) == "h2" and sel.cv_r2[2].max() > 0.9 and sel.cv_r2[0].max() < 0.2
    # the returned readout is the ridge fit on all rows at the chosen λ, in raw coordinates
    x = xs["h2"].double()
    z = (x - x.mean(0)) / x.std(0)
    coef, b = ridge_fit(z, y.double(), sel.lam(0))
    expect = (z @ coef + b).squeeze(1)
    torch.testing.assert_close(sel.readout(0)(xs["h2"]).double(), expect, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(sel.scores(xs)[:, 0], expect, rtol=1e-3, atol=1e-3)


def test_pure_noise_target_has_no_cross_validated_signal():
    xs, _, groups = _data()
    noise = torch.randn(len(groups), generator=torch.Generator().manual_seed(5))
    sel = select_ridge(xs, noise, groups)
    assert float(sel.cv_r2[:, :, 0].max()) < 0.02 and float(sel.cv_rho[:, :, 0].max()) < 0.1


def test_rank_criterion_is_not_ruled_by_a_few_extreme_targets():
    """R² follows the hook that predicts a handful of outlying scores; the rank criterion follows the
    hook that orders all the others (what fidelity, an AUROC, measures)."""
    g = torch.Generator().manual_seed(3)
    n_docs, per_doc, d = 60, 25, 8
    n = n_docs * per_doc
    groups = torch.arange(n_docs).repeat_interleave(per_doc)
    base = torch.randn(n, generator=g)
    spikes = torch.zeros(n)
    spikes[torch.randperm(n, generator=g)[:15]] = 40.0
    y = base + spikes
    noise = lambda: 0.3 * torch.randn(n, d, generator=g)
    orders = noise()
    orders[:, 0] += base  # predicts the order of every word, but not the spikes
    spiky = noise()
    spiky[:, 0] += spikes  # predicts only the 15 spikes
    sel = select_ridge({"orders": orders, "spiky": spiky}, y, groups)
    assert sel.cv_r2[1].max() > sel.cv_r2[0].max()  # R² would choose the spiky hook
    assert sel.hook(0) == "orders"


def test_non_finite_inputs_are_refused():
    xs, y, groups = _data()
    y[3] = float("nan")
    with pytest.raises(InterlinguaError, match="not finite"):
        select_ridge(xs, y, groups)
    xs2, y2, _ = _data()
    xs2["h1"][0, 0] = float("inf")
    with pytest.raises(InterlinguaError, match="NaN or inf"):
        select_ridge(xs2, y2, groups)
