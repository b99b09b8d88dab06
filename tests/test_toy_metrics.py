"""Specification of the toy-lab metrics and data generators: invariances, bounds and known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interlingua.toy import metrics as M
from interlingua.toy.data import GaussianControl, feature_probabilities, planted_features, tms_batch
from interlingua.toy.geometry import polytope_zoo, regular_polygon, tegum_product


def _random_rotation(m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))[0]


@pytest.fixture
def W() -> torch.Tensor:
    return torch.randn(12, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_feature_dimensionality_invariant_to_scale_and_rotation(W):
    d = M.feature_dimensionality(W)
    assert torch.allclose(M.feature_dimensionality(7.5 * W), d)
    assert torch.allclose(M.feature_dimensionality(W @ _random_rotation(4, 1)), d)
    assert float(d.min()) >= 0 and float(d.max()) <= 1
    assert float(d.sum()) <= W.shape[1] + 1e-9


def test_features_per_dimension_invariant_but_frobenius_is_not(W):
    assert M.features_per_dimension(3 * W) == pytest.approx(M.features_per_dimension(W))
    assert M.features_per_dimension(W @ _random_rotation(4, 2)) == pytest.approx(M.features_per_dimension(W))
    assert M.frobenius_features_per_dimension(3 * W) == pytest.approx(9 * M.frobenius_features_per_dimension(W))
    assert M.dimensions_per_feature(3 * W) == pytest.approx(M.dimensions_per_feature(W) / 9)


def test_orthogonal_features_have_dimension_one_and_zero_rows_zero():
    W = torch.zeros(4, 3, dtype=torch.float64)
    W[:3] = torch.eye(3)
    assert M.feature_dimensionality(W).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert M.dimensions_per_feature(torch.eye(3)) == pytest.approx(1.0)
    assert M.features_per_dimension(torch.eye(3, dtype=torch.float64)) == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(polytope_zoo()))
def test_polytope_dimensionalities(name):
    W, expected = polytope_zoo()[name]
    assert torch.allclose(M.feature_dimensionality(W), torch.full((len(W),), expected, dtype=torch.float64))
    # k features sharing m dimensions equally: features per dimension = k/m = 1/D
    assert M.features_per_dimension(W) == pytest.approx(1 / expected)


def test_tegum_product_keeps_each_polytope_and_sums_to_dims():
    W = tegum_product(regular_polygon(5), regular_polygon(3), torch.eye(2, dtype=torch.float64))
    d = M.feature_dimensionality(W)
    assert torch.allclose(d, torch.tensor([0.4] * 5 + [2 / 3] * 3 + [1.0] * 2, dtype=torch.float64))
    assert float(d.sum()) == pytest.approx(W.shape[1])


def test_canonicalisation_removes_per_neuron_rescaling():
    g = torch.Generator().manual_seed(3)
    W_in, W_out, b = torch.randn(6, 4, generator=g), torch.randn(5, 6, generator=g), torch.randn(6, generator=g)
    lam = torch.exp(torch.randn(6, generator=g))
    x = torch.randn(10, 4, generator=g)

    def f(wi, wo, bb):
        return torch.relu(x @ wi.T + bb) @ wo.T

    assert torch.allclose(f(W_in, W_out, b), f(lam[:, None] * W_in, W_out / lam, lam * b), atol=1e-5)
    assert M.features_per_dimension(lam[:, None] * W_in) != pytest.approx(M.features_per_dimension(W_in))
    ref = M.canonicalise_neurons(W_in, W_out, b)
    for scaled in [(lam[:, None] * W_in, W_out / lam, lam * b), (3 * W_in, W_out / 3, 3 * b)]:
        got = M.canonicalise_neurons(*scaled)
        for a, r in zip(got, ref):
            assert torch.allclose(a, r, atol=1e-5)
    wi, wo, bb = ref
    assert torch.allclose(f(wi, wo, bb), f(W_in, W_out, b), atol=1e-5)
    assert torch.allclose((wi.pow(2).sum(1) + bb.pow(2)).sqrt(), wo.norm(dim=0), atol=1e-5)


def test_welch_bound_is_attained_by_equiangular_frames_and_respected_by_random():
    assert M.welch_bound(3, 2) == pytest.approx(0.5)  # the triangle (Mercedes frame): |cos| = 1/2
    assert M.interference(regular_polygon(3)).max_abs == pytest.approx(0.5)
    assert M.welch_bound(4, 3) == pytest.approx(1 / 3)  # tetrahedron
    assert M.interference(polytope_zoo()["tetrahedron"][0]).max_abs == pytest.approx(1 / 3)
    assert M.welch_bound(3, 3) == 0.0
    V = torch.randn(128, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stats = M.interference(V)
    assert stats.max_abs >= stats.welch
    assert stats.moments[2.0] == pytest.approx(1 / 64, rel=0.1)  # random packing: E[c²] = 1/m
    assert sum(stats.histogram) == 128 * 127


def test_mmcs_recovery_and_mcc_on_a_permuted_identity():
    truth = torch.eye(6)
    learned = truth[torch.randperm(6, generator=torch.Generator().manual_seed(1))]
    assert M.mmcs(truth, learned) == pytest.approx(1.0)
    assert M.recovery_rate(truth, learned) == 1.0
    assert M.matched_mcc(truth, learned) == pytest.approx(1.0)
    assert M.matched_mcc(truth, -learned) == pytest.approx(1.0)  # |cos|: sign-free
    assert M.mmcs(truth, -learned) == pytest.approx(0.0)  # signed by default: best match is an orthogonal atom
    assert M.mmcs(truth, -learned, absolute=True) == pytest.approx(1.0)


def test_mcc_penalises_duplicates_that_mmcs_forgives():
    truth = torch.eye(4)
    learned = torch.stack([truth[0], truth[0], truth[1], truth[1]])
    assert M.mmcs(truth, learned) == pytest.approx(0.5)
    assert M.mmcs(learned, truth) == pytest.approx(1.0)  # reverse direction: every atom is genuine
    assert M.matched_mcc(truth, learned) == pytest.approx(0.5)


def test_hungarian_fallback_matches_scipy():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for shape in [(6, 6), (4, 9), (9, 4)]:
        c = rng.random(shape)
        r1, c1 = scipy_optimize.linear_sum_assignment(c)
        r2, c2 = M._hungarian_fallback(c)
        assert c[r2, c2].sum() == pytest.approx(c[r1, c1].sum())
        assert len(set(r2.tolist())) == len(r2) == min(shape) and len(set(c2.tolist())) == len(c2)


def test_sae_health_on_perfect_and_trivial_reconstructions():
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    codes = torch.zeros(100, 3)
    codes[:, 0] = 1.0
    perfect = M.sae_health(x, codes, x)
    assert perfect.fvu == 0 and perfect.l0 == 1 and perfect.dead == pytest.approx(2 / 3)
    assert perfect.shrinkage == pytest.approx(1.0)
    assert M.sae_health(x, codes, x.mean(0).expand_as(x)).fvu == pytest.approx(1.0)


def test_datapoint_dimensionality_of_a_polygon():
    assert torch.allclose(M.datapoint_dimensionality(regular_polygon(7)), torch.full((7,), 2 / 7, dtype=torch.float64))


def test_bias_statistics_relative_to_noise():
    W = torch.eye(2)
    b = torch.tensor([-0.2, -0.1])
    stats = M.bias_statistics(W, b, noise_std=0.1)
    assert stats.mean == pytest.approx(-0.15) and stats.represented == 2
    assert stats.relative_to_noise == pytest.approx([-2.0, -1.0])


def test_plateau_time():
    t = torch.arange(5.0)
    assert M.plateau_time(t, torch.tensor([0.0, 0.1, 0.6, 0.9, 1.0])) == 2.0
    assert M.plateau_time(t, torch.zeros(5)) == math.inf


@pytest.mark.parametrize("decay", [1.0, 0.99, 0.5])
def test_feature_probabilities_honour_expected_active(decay):
    p = feature_probabilities(50, 5.0, decay)
    assert float(p.sum()) == pytest.approx(5.0, rel=1e-5) and float(p.max()) <= 1.0
    assert torch.all(p[1:] <= p[:-1] + 1e-7)


@pytest.mark.parametrize("correlated", [False, True])
def test_planted_features_honour_expected_active(correlated):
    pf = planted_features(16, 40, expected_active=3.0, correlated=correlated, seed=0)
    _, codes = pf.sample(40000, torch.Generator().manual_seed(1))
    assert float((codes > 0).sum(1).float().mean()) == pytest.approx(3.0, rel=0.03)
    assert torch.allclose(pf.directions.norm(dim=1), torch.ones(40))
    if correlated:  # firing events are correlated, marginals unchanged
        fire = (codes > 0).float()
        assert float(torch.corrcoef(fire.T).fill_diagonal_(0).abs().mean()) > 0.02


def test_same_features_different_sampling_seeds():
    a, b = planted_features(8, 20, seed=5), planted_features(8, 20, seed=5)
    assert torch.equal(a.directions, b.directions)
    xa, _ = a.sample(10, torch.Generator().manual_seed(0))
    xb, _ = b.sample(10, torch.Generator().manual_seed(1))
    assert not torch.equal(xa, xb)


def test_tms_batch_sparsity_and_range():
    x = tms_batch(20000, torch.full((3, 4), 0.25), torch.Generator().manual_seed(0))
    assert x.shape == (20000, 3, 4)
    assert float((x > 0).float().mean()) == pytest.approx(0.25, abs=0.01)
    assert float(x.max()) < 1 and float(x.min()) >= 0


def test_gaussian_control_matches_mean_and_covariance():
    pf = planted_features(8, 16, seed=0)
    x, _ = pf.sample(50000, torch.Generator().manual_seed(0))
    y = GaussianControl.like(x).sample(50000, torch.Generator().manual_seed(1))
    assert torch.allclose(y.mean(0), x.mean(0), atol=0.01)
    assert torch.allclose(torch.cov(y.T), torch.cov(x.T), atol=0.01)


def test_superposition_and_norms_of_an_antipodal_pair_next_to_a_dedicated_feature():
    W = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    assert M.feature_norms(W).tolist() == [1.0, 1.0, 2.0, 0.0]
    # s_i = Σ_{j≠i} (Ŵ_i·W_j)²: each half of the pair feels the other fully, the dedicated one nothing
    assert M.superposition(W).tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert M.feature_dimensionality(W).tolist() == pytest.approx([0.5, 0.5, 1.0, 0.0])


def test_interference_respects_the_mask_and_its_moments():
    W = tegum_product(regular_polygon(3), torch.eye(1, dtype=torch.float64))
    stats = M.interference(W)
    # triangle pairs have |cos| = 1/2 (6 ordered pairs), everything else 0 (6 more)
    assert stats.moments[1.0] == pytest.approx(3 / 12) and stats.moments[2.0] == pytest.approx(1.5 / 12)
    tri = M.interference(W, mask=torch.tensor([True, True, True, False]))
    assert tri.n == 3 and tri.max_abs == pytest.approx(0.5) and tri.moments[4.0] == pytest.approx(1 / 16)
