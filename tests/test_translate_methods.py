"""Global maps, direction retrieval and unit search: exact on planted data, null-aware."""

import pytest
import torch

from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.models.hooks import capturing, find_layers, stopping
from interlingua.similarity import r2_score
from interlingua.translate import fit_transfer
from interlingua.translate.maps import fit_map, fit_procrustes_map, fit_ridge_map
from interlingua.translate.retrieval import retrieval, standardised_cosine
from interlingua.translate.nulls import document_permutations
from interlingua.translate.units import correlations, mlp_neurons, neuron_hooks, unit_search


def planted(n=4000, da=24, db=32, noise=0.01, seed=0, orthogonal=False):
    g = torch.Generator().manual_seed(seed)
    xa = torch.randn(n, da, generator=g) @ torch.randn(da, da, generator=g) + 3.0
    if orthogonal:  # B is a rotation of A, padded with zero-variance-free extra noise dims
        q, _ = torch.linalg.qr(torch.randn(db, db, generator=g))
        xb = torch.cat([xa, 1e-3 * torch.randn(n, db - da, generator=g)], 1) @ q
    else:
        xb = xa @ torch.randn(da, db, generator=g) - 1.0
    xb = xb + noise * xb.std() * torch.randn(xb.shape, generator=g)
    return xa, xb, Readout(weight=torch.randn(da, generator=g), bias=0.5)


@pytest.mark.parametrize("kind", ["ridge", "procrustes"])
def test_global_maps_carry_a_readout_exactly_on_a_linear_pair(kind):
    xa, xb, concept = planted(orthogonal=kind == "procrustes")
    gmap = fit_map(kind, xa[:3000], xb[:3000])
    held = gmap.pull_readout(concept)(xb[3000:])
    assert r2_score(concept(xa[3000:]), held) > 0.999
    assert gmap.info["r2_val_b_to_a"] > 0.99


def test_global_maps_fail_on_shuffled_pairing():
    xa, xb, concept = planted()
    perm = torch.randperm(3000, generator=torch.Generator().manual_seed(3))
    for kind in ("ridge", "procrustes"):
        gmap = fit_map(kind, xa[:3000], xb[:3000][perm])
        assert r2_score(concept(xa[3000:]), gmap.pull_readout(concept)(xb[3000:])) < 0.05


def test_procrustes_pushes_vectors_back_and_forth():
    xa, xb, _ = planted(orthogonal=True, noise=0.0)
    gmap = fit_procrustes_map(xa, xb, k=24)
    v = xa[1] - xa[0]
    # moving A by v moves B by push(v); mapping that B displacement back gives v again
    torch.testing.assert_close((gmap.push_vector(v).double() @ gmap.matrix).float(), v, rtol=1e-3, atol=1e-3)


def test_ridge_map_pullback_is_the_readout_transfer():
    """Least squares is linear in its target: the global ridge map composed with A's readout is
    the per-concept readout transfer at the same λ. Both paths must agree."""
    xa, xb, concept = planted(noise=0.3)
    gmap = fit_ridge_map(xa, xb, lams=(0.05,))
    direct = fit_transfer(xb, concept(xa), lam=0.05)
    torch.testing.assert_close(gmap.pull_readout(concept)(xb), direct(xb), rtol=1e-4, atol=1e-4)


def test_unknown_map_and_too_few_words():
    xa, xb, _ = planted(n=50)
    with pytest.raises(InterlinguaError, match="unknown global map"):
        fit_map("cca", xa, xb)
    with pytest.raises(InterlinguaError, match="aligned words"):
        fit_map("ridge", xa[:5], xb[:5])


def test_retrieval_ranks_the_true_concept_first():
    g = torch.Generator().manual_seed(0)
    d, k = 64, 23
    std = torch.rand(d, generator=g) * 3 + 0.1
    natives = {f"c{i}": torch.randn(d, generator=g, dtype=torch.float64) for i in range(k)}
    # a readout for c5 in raw space: standardised weight Δμ/σ, raw weight Δμ/σ²
    readout = Readout(weight=(natives["c5"] / std ** 2 + 0.05 * torch.randn(d, generator=g)).float(), bias=0.0)
    out = retrieval(readout, "c5", natives, std)
    assert out["rank"] == 1 and out["top1"] and out["k"] == k and out["chance_top1"] == round(1 / k, 4)
    assert out["nearest"][0][0] == "c5"
    wrong = retrieval(readout, "c6", natives, std)
    assert wrong["rank"] > 1 and not wrong["top1"]
    assert standardised_cosine(natives["c5"] / std ** 2, natives["c5"], std) == pytest.approx(1.0)


def test_unit_search_finds_a_planted_neuron_above_the_null():
    g = torch.Generator().manual_seed(0)
    units = torch.randn(2000, 300, generator=g)
    score = units[:, 123] * 2 + 0.5 * torch.randn(2000, generator=g)
    doc = torch.arange(100).repeat_interleave(20)
    perms = document_permutations(doc, 200)
    out = unit_search(units, score, perms)
    assert out["top"][0]["unit"] == 123 and out["above_null"] and out["p_value"] < 0.01
    assert out["best_abs_corr"] > out["null_max_abs_corr"]["max"]
    noise = unit_search(units, torch.randn(2000, generator=g), perms)
    assert not noise["above_null"] and noise["p_value"] > 0.01


def test_correlations_match_numpy():
    g = torch.Generator().manual_seed(1)
    u, s = torch.randn(100, 7, generator=g), torch.randn(100, generator=g)
    import numpy as np
    ref = [np.corrcoef(u[:, j].numpy(), s.numpy())[0, 1] for j in range(7)]
    torch.testing.assert_close(correlations(u, s), torch.tensor(ref, dtype=torch.float64), rtol=1e-6, atol=1e-6)


def test_mlp_neurons_equal_the_down_projection_input(tiny):
    layer = 1
    ids = tiny.tokenizer(["The cat sat on the mat today."], return_tensors="pt")
    seen = {}
    down = find_layers(tiny.model)[layer].mlp.down_proj
    handle = down.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].detach()))
    points = [tiny.hook(h) for h in neuron_hooks(tiny, layer)]
    try:
        with capturing(tiny.model, points, stop=False) as store, stopping(), torch.inference_mode():
            tiny.model(**ids)
    finally:
        handle.remove()
    got = mlp_neurons(tiny, layer, *(store[p.name] for p in points))
    torch.testing.assert_close(got, seen["x"].float(), rtol=1e-4, atol=1e-5)


def test_mlp_readout_beats_linear_on_a_nonlinear_score_and_reports_its_gap():
    from interlingua.translate.readout import fit_mlp_transfer

    g = torch.Generator().manual_seed(0)
    xb = torch.randn(3000, 16, generator=g)
    score = xb[:, 0].abs() * 2 - 1  # no linear readout can express |x|
    groups = torch.arange(3000) // 10
    model, report = fit_mlp_transfer(xb, score, groups, lam=1e-2, max_steps=300)
    # judged on documents that neither training, early stopping nor the linear fit touched
    assert report["beats_linear"] and report["r2_heldout"] > 0.8 and report["linear_r2_heldout"] < 0.1
    assert not report["overfit"] and abs(report["r2_train"] - report["r2_heldout"]) < 0.1
    assert report["r2_heldout"] != report["r2_early_stop"]
    assert model(xb[:5]).shape == (5,) and not model(xb[:5]).requires_grad
    with pytest.raises(InterlinguaError, match="at least 5 documents"):
        fit_mlp_transfer(xb[:20], score[:20], torch.zeros(20, dtype=torch.long), lam=1e-2)

