"""Similarity measures and their nulls."""

import pytest
import torch

from interlingua.similarity import (
    cka_biased,
    cka_debiased,
    cka_matrix,
    mutual_knn,
    permutation_test,
    ridge_r2_cv,
)


def gaussian(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_debiased_cka_is_near_zero_where_biased_is_not():
    """DESIGN.md: biased CKA ≈ 0.70 for independent Gaussians at n=256, d=576 vs 640."""
    x, y = gaussian(256, 576, 0), gaussian(256, 640, 1)
    assert cka_biased(x, y) > 0.6
    assert abs(cka_debiased(x, y)) < 0.05


def test_cka_invariant_to_rotation_and_scale():
    x = gaussian(300, 20, 2)
    q, _ = torch.linalg.qr(gaussian(20, 20, 3))
    assert cka_debiased(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-9)


def test_cka_of_noisy_linear_map_between_zero_and_one():
    x = gaussian(400, 30, 4)
    y = x @ gaussian(30, 40, 5) + 3 * gaussian(400, 40, 6)
    assert 0.1 < cka_debiased(x, y) < 0.95


def test_mutual_knn():
    x = gaussian(200, 16, 7)
    assert mutual_knn(x, 2 * x, k=5) == 1.0
    assert mutual_knn(x, gaussian(200, 16, 8), k=5) < 0.15


def test_ridge_r2_cv_recovers_and_floors():
    x = gaussian(600, 20, 9)
    w = gaussian(20, 3, 10)
    y = x @ w + 0.1 * gaussian(600, 3, 11)
    assert ridge_r2_cv(x, y, lam=1e-4) > 0.98
    assert ridge_r2_cv(x, gaussian(600, 3, 12)) < 0.05


def test_ridge_r2_cv_survives_rare_sparse_columns():
    """Sparse codes (SAE latents, toy features) have columns that fire once, weakly, in a training
    fold; a strong held-out firing must not be scaled into a wild prediction (was R² ≈ −860)."""
    g = torch.Generator().manual_seed(0)
    n = 512
    signal = torch.randn(n, 1, generator=g)
    sparse = (torch.rand(n, 400, generator=g) < 0.002) * torch.rand(n, 400, generator=g)
    y = signal + 0.1 * torch.randn(n, 1, generator=g)
    assert ridge_r2_cv(torch.cat([signal, sparse], 1), y) > 0.8


def test_permutation_test_separates_signal_from_null():
    x = gaussian(200, 10, 13)
    y = x @ gaussian(10, 12, 14) + gaussian(200, 12, 15)
    res = permutation_test(cka_debiased, x, y, n_perm=19)
    assert res["value"] > res["null_band"][1] and res["p"] == pytest.approx(0.05) and res["z"] > 5
    res = permutation_test(cka_debiased, x, gaussian(200, 12, 16), n_perm=19)
    assert res["null_band"][0] - 0.02 <= res["value"] <= res["null_band"][1] + 0.02


def test_cka_matrix_equals_pairwise_debiased_cka():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(80, 6, generator=g)
    xs = [base @ torch.randn(6, 10, generator=g), torch.randn(80, 7, generator=g)]
    ys = [base @ torch.randn(6, 12, generator=g) + 0.1 * torch.randn(80, 12, generator=g), torch.randn(80, 5, generator=g),
          torch.randn(80, 9, generator=g) + 3]
    m = cka_matrix(xs, ys)
    assert m.shape == (2, 3)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            assert abs(float(m[i, j]) - cka_debiased(x, y)) < 1e-10
    assert float(m[0, 0]) > 0.4 and abs(float(m[1, 1])) < 0.2  # shared base vs independent
