"""Cross-model ground truth: the correspondence metrics on constructed cases with known answers,
and the comparison pipeline on synthetic unit pairs (no training, so these run in seconds)."""

from __future__ import annotations

import pytest
import torch

from interlingua.toy import metrics as M
from interlingua.toy.crossmodel import (
    ProjectedWorld,
    readout_transfer,
    unit_matching,
    unit_profiles,
)
from interlingua.toy.models import ProjectedMLP
from interlingua.toy.train import train_projected
from interlingua.translate.readout import fit_transfer, transfer_readouts


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_correlation_matrix_matches_corrcoef_and_zeroes_dead_units():
    x = torch.randn(200, 3, generator=_gen(0), dtype=torch.float64)
    y = torch.cat([x[:, :1] * 2 + 0.1 * torch.randn(200, 1, generator=_gen(1), dtype=torch.float64),
                   torch.zeros(200, 1, dtype=torch.float64)], dim=1)
    c = M.correlation_matrix(x, y)
    ref = torch.corrcoef(torch.cat([x, y[:, :1]], 1).T)[:3, 3]
    assert torch.allclose(c[:, 0], ref)
    assert torch.equal(c[:, 1], torch.zeros(3, dtype=torch.float64))  # a dead unit correlates with nothing


def test_hungarian_match_recovers_a_permutation():
    perm = torch.randperm(7, generator=_gen(2))
    score = torch.eye(7)[perm] + 0.05 * torch.rand(7, 7, generator=_gen(3))
    rows, cols = M.hungarian_match(score)
    assert torch.equal(rows, torch.arange(7)) and torch.equal(cols, perm)


def test_selectivity_and_represented_features():
    n = 4
    profiles = torch.tensor([[0.0, 2.0, 0.0, 0.0],      # monosemantic for feature 1 (any scale)
                             [1.0, 1.0, 1.0, 1.0],      # responds to everything equally
                             [0.0, 0.0, 0.0, 0.0],      # dead on single features
                             [1.0, 0.3, 0.0, 0.0]])     # mostly feature 0: cos = 1/√1.09 ≈ 0.958
    sel = M.unit_selectivity(profiles)
    assert sel.tolist() == pytest.approx([1.0, 1 / n**0.5, 0.0, 1 / 1.09**0.5])
    rep = M.represented_features(profiles, kappa=0.9)
    assert rep.nonzero().tolist() == [[0, 1], [3, 0]]
    assert not M.represented_features(profiles, kappa=0.99)[3].any()
    assert M.monosemantic_fraction(profiles) == pytest.approx(2 / 3)  # of the 3 live units
    assert M.feature_coverage(profiles) == pytest.approx(2 / 4)


def test_correspondence_scores_use_the_best_achievable_one_to_one_matching():
    truth = torch.zeros(3, 3, dtype=torch.bool)
    truth[0, 0] = truth[1, 0] = truth[2, 2] = True  # A0 and A1 both correspond only to B0
    # claims: A0-B0 (right), A1-B1 (wrong), A2-B2 (right); at most 2 true pairs fit one-to-one
    s = M.correspondence_scores(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), truth)
    assert (s.claimed, s.correct, s.achievable) == (3, 2, 2)
    assert s.precision == pytest.approx(2 / 3) and s.recall == 1.0
    empty = M.correspondence_scores(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), truth)
    assert empty.precision is None and empty.recall == 0.0


def test_feature_correspondence_scores():
    rep_a = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)  # A2 is polysemantic
    rep_b = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    # A0-B0 right (feature 0); A1-B1 wrong (1 vs 2); A2-B2 makes no feature claim
    s = M.feature_correspondence_scores(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), rep_a, rep_b)
    assert (s.claimed, s.correct, s.achievable) == (2, 1, 1)  # only feature 0 is represented in both
    assert s.precision == 0.5 and s.recall == 1.0


def _synthetic_units(n_features: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse codes and 'units' that are the codes themselves (perfectly monosemantic)."""
    world = ProjectedWorld(n_features=n_features, input_dim=8, probability=0.1)
    x = world.sample(3000, seed)
    return x, x.clone()


def test_unit_matching_recovers_a_permuted_rescaled_copy_and_its_null_claims_nothing():
    x, h_a = _synthetic_units(12, 0)
    perm = torch.randperm(12, generator=_gen(4))
    scale = torch.rand(12, generator=_gen(5)) + 0.5
    h_b = h_a[:, perm] * scale + 0.01 * torch.randn(h_a.shape, generator=_gen(6))
    eye = torch.eye(12, dtype=torch.float64)
    prof_a, prof_b = eye, eye[:, perm].T.contiguous() * scale[:, None].double()
    out = unit_matching(h_a, h_b, prof_a, prof_b, threshold=0.8)
    for level in ("units", "features"):
        got = out["at_threshold"][level]
        assert got["precision"] == 1.0 and got["recall"] == 1.0 and got["claimed"] == 12
    assert out["shuffled_pairing"]["claimed_at_threshold"] == 0
    assert out["shuffled_pairing"]["unit_precision"] < 0.3
    # the same matching against a B whose units are unrelated noise: claims vanish
    noise = torch.rand(h_a.shape, generator=_gen(7))
    bad = unit_matching(h_a, noise, prof_a, torch.ones(12, 12, dtype=torch.float64), threshold=0.8)
    assert bad["at_threshold"]["units"]["claimed"] == 0


def test_readout_transfer_through_a_linear_mix_and_its_shuffled_null():
    x, h_a = _synthetic_units(10, 1)
    x_test, h_a_test = _synthetic_units(10, 2)
    mix = torch.randn(10, 16, generator=_gen(8))
    out = readout_transfer(h_a, h_a @ mix, x, h_a_test, h_a_test @ mix, x_test, lam=1e-4)
    assert out["auroc_transfer"] == pytest.approx(out["auroc_probe_A"], abs=1e-3) and out["auroc_transfer"] > 0.99
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["recovery"] == pytest.approx(1.0, abs=0.01)
    assert 0.4 <= out["auroc_shuffled_pairing"] <= 0.6
    # B that carries nothing about the features: every transferred readout is at chance, nothing claimed
    junk = torch.randn(len(x), 16, generator=_gen(9))
    none = readout_transfer(h_a, junk, x, h_a_test, torch.randn(len(x_test), 16, generator=_gen(10)), x_test)
    assert none["auroc_transfer"] < 0.6 and (none["precision"] or 0.0) < 0.5


def test_batched_transfer_is_fit_transfer_per_feature():
    """The lab carries A's scores with interlingua's own translation solver."""
    h_b = torch.randn(300, 6, generator=_gen(11))
    scores = torch.randn(300, 3, generator=_gen(12), dtype=torch.float64)
    batched = transfer_readouts(h_b, scores, lam=1e-3)
    for i in range(3):
        single = fit_transfer(h_b, scores[:, i], lam=1e-3, pos_weight=1.0)
        assert torch.allclose(batched[i].weight, single.weight, atol=1e-5)
        assert batched[i].bias == pytest.approx(single.bias, abs=1e-5)


def test_projected_profiles_separate_monosemantic_from_random_neurons():
    """Neurons built to read one feature each, with a bias below every other feature's overlap,
    represent exactly that feature; random-init neurons represent none."""
    world = ProjectedWorld(n_features=12, input_dim=8)
    P = world.projection()
    model = ProjectedMLP(P, 12, seed=0)
    with torch.no_grad():
        model.W1.copy_(P)
        overlap = (P @ P.T).fill_diagonal_(-1).max(1).values
        model.b1.copy_(-overlap - 0.01)
    prof = unit_profiles(model.hidden, 12)
    assert M.represented_features(prof).equal(torch.eye(12, dtype=torch.bool))
    assert M.feature_coverage(prof) == 1.0
    random = unit_profiles(ProjectedMLP(P, 64, seed=1).hidden, 12)
    assert M.monosemantic_fraction(random) < 0.1


def test_train_projected_snapshots():
    world = ProjectedWorld(n_features=8, input_dim=4)
    model = ProjectedMLP(world.projection(), 16, seed=0)
    run = train_projected(model, world.probabilities(), 40, batch=64, lr=1e-2, seed=0, snapshots=4)
    assert [s.step for s in run.snapshots] == [10, 20, 30, 40]
    assert torch.equal(run.snapshots[-1].W1, model.W1.detach())
    assert not torch.equal(run.snapshots[0].W1, run.snapshots[-1].W1)
    assert run.snapshots[-1].loss < run.snapshots[0].loss * 1.5 and run.loss > 0
