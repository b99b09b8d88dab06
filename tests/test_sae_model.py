"""SparseAutoencoder: sparse gradients equal dense ones, planted features are recovered, SAELens files round-trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from interlingua.errors import InterlinguaError
from interlingua.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
from interlingua.sae import kernels
from interlingua.sae.data import TensorSource
from interlingua.sae.train import TrainConfig, train_sae
from interlingua.toy.data import planted_features
from interlingua.toy.metrics import mmcs
from interlingua.toy.sae import pca_directions


pytestmark = pytest.mark.usefixtures("one_thread")


def _sae(arch: str, d: int = 12, m: int = 96, seed: int = 0) -> SparseAutoencoder:
    cfg = SAEConfig(arch, d, m, k=5 if arch in ("topk", "batchtopk") else None, bandwidth=0.4)
    sae = SparseAutoencoder(cfg, seed=seed, threshold_init=0.3).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move off the symmetric init so every path carries signal
        sae.encoder.add_(0.3 * torch.randn(sae.encoder.shape, generator=g, dtype=torch.float64))
        sae.b_enc.add_(0.1 * torch.randn(m, generator=g, dtype=torch.float64))
        sae.b_dec.add_(torch.randn(d, generator=g, dtype=torch.float64))
        if arch == "jumprelu":
            sae.threshold.add_(0.2 * torch.rand(m, generator=g, dtype=torch.float64))
    return sae


def test_low_precision_pre_activations_include_the_bias():
    """The bf16 path folds b_enc into the matmul as an extra column; it must equal the float one to
    bf16 rounding, bias and decoder-bias centring included."""
    sae = _sae("topk").float()
    with torch.no_grad():
        sae.b_enc.add_(3.0)  # a bias far larger than bf16 rounding, so leaving it out would show
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(5))
    exact = sae.pre_activations(x)
    low = sae.pre_activations(x, torch.bfloat16)
    assert low.dtype == torch.bfloat16 and low.shape == exact.shape
    assert (low.float() - exact).abs().max() < 0.05 * exact.abs().max()


def _dense_reference(sae: SparseAutoencoder, x, coeff, dead, aux_k):
    """The same losses with dense [B, d_sae] matrices and plain autograd."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    arch = sae.architecture
    if arch == "topk":
        mask = torch.zeros_like(pre, dtype=torch.bool).scatter(1, pre.detach().topk(sae.cfg.k, 1).indices, True)
        z = torch.relu(pre) * mask
    elif arch == "batchtopk":
        flat = torch.relu(pre.detach()).flatten()
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.topk(sae.cfg.k * x.shape[0]).indices] = True
        z = torch.relu(pre) * (keep.view_as(pre) & (pre.detach() > 0))
    elif arch == "relu":
        z = torch.relu(pre)
    else:
        theta = sae.threshold.expand_as(pre)
        live = (pre.detach() > 0).to(pre.dtype)
        z = kernels.jumprelu(pre, theta, sae.cfg.bandwidth) * live
    x_hat = z @ sae.W_dec + sae.b_dec
    err = x - x_hat
    tv = (x - x.mean(0)).pow(2).sum()
    fvu = err.pow(2).sum() / tv
    if arch == "relu":
        sparsity = z.sum(1).mean() / (tv / x.shape[0]).sqrt()
    elif arch == "jumprelu":
        sparsity = (kernels.step(pre, sae.threshold.expand_as(pre), sae.cfg.bandwidth) * live).sum(1).mean()
    else:
        sparsity = torch.zeros(())
    loss = fvu + coeff * sparsity
    if arch in ("topk", "batchtopk"):
        k_aux = min(aux_k, int(dead.sum()))
        aux_idx = pre.detach().masked_fill(~dead[None], float("-inf")).topk(k_aux, 1).indices
        za = torch.zeros_like(pre).scatter(1, aux_idx, torch.relu(pre.gather(1, aux_idx)))
        e_hat = za @ sae.W_dec
        loss = loss + min(int(dead.sum()) / aux_k, 1.0) * (e_hat - err.detach()).pow(2).sum() / tv
    return loss


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu", "jumprelu"])
@pytest.mark.parametrize("chunked", [False, True])
def test_sparse_gradients_equal_dense(arch, chunked, monkeypatch):
    monkeypatch.setattr(kernels, "DENSE_FRACTION", 1.0)  # always the sparse kernels
    if chunked:
        monkeypatch.setattr(kernels, "_CHUNK_ELEMENTS", 100)  # several row chunks per backward
    sae = _sae(arch)
    x = torch.randn(40, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dead = torch.zeros(96, dtype=torch.bool)
    dead[::4] = True
    out = sae.losses(x, sparsity_coefficient=0.3, dead_mask=dead, aux_k=6)
    (out.loss + out.auxk).backward()
    sparse = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    ref = _dense_reference(sae, x, 0.3, dead, 6)
    assert torch.allclose(out.loss + out.auxk, ref, rtol=1e-12, atol=1e-12)
    ref.backward()
    for name, p in sae.named_parameters():
        assert p.grad is not None and sparse[name].abs().max() > 0, name
        assert torch.allclose(sparse[name], p.grad, rtol=1e-9, atol=1e-11), name
    if arch == "jumprelu":  # the straight-through window reached the threshold
        assert sparse["threshold"].abs().sum() > 0


def test_encode_at_gradients_match_the_dense_formula():
    """The centre's gradient comes from the per-latent sums (−Σ_j ∂b_j W_j), the input's from a gather."""
    g = torch.Generator().manual_seed(8)
    x, centre = torch.randn(9, 7, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64)
    weight, bias = torch.randn(50, 7, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 50, (9, 3), generator=g)
    idx[0, 1] = idx[0, 0]  # a latent used twice in one row
    upstream = torch.randn(9, 3, generator=g, dtype=torch.float64)
    grads = []
    for sparse in (True, False):
        leaves = [t.clone().requires_grad_() for t in (x, centre, weight, bias)]
        xs, cs, ws, bs = leaves
        out = kernels.encode_at(xs, ws, bs, idx, centre=cs) if sparse else ((xs - cs) @ ws.T + bs).gather(1, idx)
        (out * upstream).sum().backward()
        grads.append([t.grad for t in leaves])
    for name, a, b in zip(("x", "centre", "weight", "bias"), *grads):
        assert torch.allclose(a, b, atol=1e-12), name


def test_dense_fallback_matches_sparse_path(monkeypatch):
    sae = _sae("relu")
    x = torch.randn(30, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grads = []
    for frac in (0.0, 1.0):  # 0: always dense, 1: always sparse
        monkeypatch.setattr(kernels, "DENSE_FRACTION", frac)
        sae.zero_grad()
        sae.losses(x, sparsity_coefficient=0.5).loss.backward()
        grads.append({n: p.grad.clone() for n, p in sae.named_parameters()})
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], rtol=1e-10, atol=1e-12), n


def test_encode_decode_agree_with_dense_formula():
    for arch in ("topk", "relu", "jumprelu"):
        sae = _sae(arch)
        x = torch.randn(20, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        code = sae.encode(x)
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        dense = code.dense(sae.d_sae)
        if arch == "topk":
            assert (code.l0() <= 5).all()
            top = pre.topk(5, 1).values.clamp_min(0)
            assert torch.allclose(dense.sort(1, descending=True).values[:, :5], top)
        elif arch == "relu":
            assert torch.allclose(dense, torch.relu(pre))
        else:
            assert torch.allclose(dense, pre * (pre > sae.threshold))
        assert torch.allclose(sae(x), dense @ sae.W_dec + sae.b_dec)


def test_topk_recovers_planted_features_and_pca_does_not():
    """Sharkey et al.'s planted-feature check: 64 features in 32 dimensions, ~4 active, a 2×
    overcomplete dictionary (128 latents)."""
    pf = planted_features(dim=32, n_features=64, expected_active=4, decay=0.99, seed=0)
    x, _ = pf.sample(40_000, torch.Generator().manual_seed(1))
    cfg = TrainConfig(architecture="topk", d_sae=128, k=4, batch_size=256, total_vectors=100_000, lr=3e-3,
                      warmup_steps=20, compute_dtype="float32", dead_after=20_000)
    sae = train_sae(TensorSource(x), cfg).saes["x"]
    learned = mmcs(pf.directions, sae.W_dec)
    pca = mmcs(pf.directions, pca_directions(x), absolute=True)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(2)))
    chance = mmcs(pf.directions, q.T, absolute=True)
    assert learned >= 0.97
    assert abs(pca - chance) < 0.1 and pca < 0.75, (pca, chance)
    # the dictionary does not simply reproduce the data: held-out reconstruction is good at L0 = k
    held, _ = pf.sample(2_000, torch.Generator().manual_seed(9))
    err = (sae(held) - held).pow(2).sum() / (held - held.mean(0)).pow(2).sum()
    assert err < 0.25


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu", "jumprelu"])
def test_saelens_layout_round_trip(arch, tmp_path):
    sae = _sae(arch).float()
    sae.cfg.hook_name, sae.cfg.model_name = "resid_post.3", "tiny"
    sae.cfg.provenance = {"seed": 7}
    if arch == "batchtopk":
        with torch.no_grad():
            sae.threshold.fill_(0.25)
    save_sae(sae, tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["architecture"] == {"topk": "topk", "batchtopk": "jumprelu", "relu": "standard",
                                   "jumprelu": "jumprelu"}[arch]
    for key in ("d_in", "d_sae", "dtype", "device", "hook_name", "apply_b_dec_to_input", "normalize_activations"):
        assert key in cfg, key
    assert (cfg["d_in"], cfg["d_sae"], cfg["normalize_activations"]) == (12, 96, "none")
    assert cfg["metadata"]["hook_name"] == "resid_post.3" and cfg["metadata"]["model_name"] == "tiny"
    if arch == "topk":
        assert cfg["k"] == 5
    with safe_open(str(tmp_path / "sae" / "sae_weights.safetensors"), "pt") as fh:
        shapes = {n: tuple(fh.get_tensor(n).shape) for n in fh.keys()}
        assert torch.equal(fh.get_tensor("W_enc"), sae.W_enc)
    expected = {"W_enc": (12, 96), "W_dec": (96, 12), "b_enc": (96,), "b_dec": (12,)}
    if arch in ("jumprelu", "batchtopk"):
        expected["threshold"] = (96,)
    assert shapes == expected
    back = load_sae(tmp_path / "sae")
    assert back.architecture == arch and back.cfg.provenance == {"seed": 7} and back.cfg.k == sae.cfg.k
    for name, p in sae.state_dict().items():
        assert torch.equal(back.state_dict()[name], p), name
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(6))
    assert torch.equal(back(x), sae(x))


def test_plain_saelens_files_load(tmp_path):
    """A cfg.json as SAELens writes it (no interlingua metadata) loads with the mapped architecture."""
    sae = _sae("relu").float()
    save_sae(sae, tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    del cfg["metadata"]["interlingua"]
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    back = load_sae(tmp_path / "s")
    assert back.architecture == "relu"
    x = torch.randn(4, 12)
    assert torch.equal(back(x), sae(x))
    cfg["architecture"] = "gated"
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(InterlinguaError, match="gated"):
        load_sae(tmp_path / "s")
    with pytest.raises(InterlinguaError, match="not an SAE directory"):
        load_sae(tmp_path)


def test_fold_input_scale_is_exact():
    for arch in ("topk", "relu", "jumprelu"):
        sae = _sae(arch)
        x = torch.randn(10, 12, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
        scaled = sae(3.0 * x) / 3.0
        code = sae.encode(3.0 * x)
        sae.fold_input_scale_(3.0)
        assert torch.allclose(sae(x), scaled, atol=1e-12)
        assert torch.allclose(sae.encode(x).values, code.values / 3.0, atol=1e-12)


def test_config_errors():
    with pytest.raises(InterlinguaError, match="architecture"):
        SAEConfig("gated", 4, 8)
    with pytest.raises(InterlinguaError, match="k"):
        SAEConfig("topk", 4, 8)


def test_jumprelu_pseudo_derivatives():
    pre = torch.tensor([0.10, 0.29, 0.31, 0.50, 0.60], dtype=torch.float64, requires_grad=True)
    theta = torch.full((5,), 0.3, dtype=torch.float64, requires_grad=True)
    eps = 0.1  # window: |π − θ| < 0.05 → entries 1 and 2
    z = kernels.jumprelu(pre, theta, eps)
    assert torch.equal(z.detach(), torch.tensor([0, 0, 0.31, 0.50, 0.60], dtype=torch.float64))
    z.sum().backward()
    assert torch.equal(pre.grad, torch.tensor([0, 0, 1.0, 1, 1], dtype=torch.float64))
    assert torch.allclose(theta.grad, torch.tensor([0, -3.0, -3.0, 0, 0], dtype=torch.float64))  # −θ/ε
    theta.grad = None
    kernels.step(pre, theta, eps).sum().backward()
    assert torch.allclose(theta.grad, torch.tensor([0, -10.0, -10.0, 0, 0], dtype=torch.float64))  # −1/ε


@pytest.mark.parametrize("optimizer", ["adam", "sfadam"])
def test_jumprelu_threshold_learns_sparsity_under_adam(optimizer):
    """A larger L0 coefficient must give a sparser code: the raw threshold moves under Adam."""
    pf = planted_features(dim=32, n_features=64, expected_active=4, decay=0.99, seed=0)
    x, _ = pf.sample(20_000, torch.Generator().manual_seed(1))
    l0, theta = {}, {}
    for coeff in (0.0005, 0.02):
        cfg = TrainConfig(architecture="jumprelu", d_sae=128, batch_size=256, total_vectors=60_000, lr=3e-3,
                          warmup_steps=20, compute_dtype="float32", sparsity_coefficient=coeff, optimizer=optimizer)
        result = train_sae(TensorSource(x), cfg)
        sae = result.saes["x"]
        l0[coeff] = float(sae.encode(x[:2000]).l0().float().mean())
        theta[coeff] = float(sae.threshold.mean()) * result.summary["hooks"]["x"]["input_scale"]  # training units
    assert l0[0.02] < 0.5 * l0[0.0005], l0
    assert theta[0.02] > 2 * theta[0.0005] and theta[0.02] > 0.1, theta  # moved up from its initial 0.1


@pytest.mark.parametrize("n,k,dtype", [(1000, 30, torch.float32), (5203, 20, torch.bfloat16), (5000, 1, torch.float32),
                                         (300, 32, torch.float32), (4099, 32, torch.bfloat16)])
def test_topk_indices_selects_what_torch_topk_selects(n, k, dtype):
    """The staged selection returns the k largest entries of every row, leftover columns past the
    last whole group and ties (bfloat16) included."""
    g = torch.Generator().manual_seed(n + k)
    pre = torch.randn(64, n + 3, generator=g).to(dtype)[:, 3:]  # rows not contiguous with each other
    pre[0, -1] = 100.0  # the row's largest entry in the leftover columns
    got = kernels.topk_indices(pre, k)
    want = torch.topk(pre, k, dim=1).values
    assert got.shape == (64, k) and bool((got.sort(1).values.diff(dim=1) > 0).all())  # distinct columns
    assert torch.equal(pre.gather(1, got).sort(1, descending=True).values, want)


def test_batch_topk_selects_the_batch_largest_positive_entries():
    g = torch.Generator().manual_seed(2)
    pre = torch.randn(64, 512, generator=g) - 2.2  # ~455 positive entries, more than k·B = 320
    idx, valid = kernels.select_batch_topk(pre, 5)
    got = torch.zeros_like(pre, dtype=torch.bool)
    got[torch.arange(64)[:, None].expand_as(idx)[valid], idx[valid]] = True
    want = torch.zeros(pre.numel(), dtype=torch.bool)
    want[pre.flatten().topk(320).indices] = True
    want = want.view_as(pre) & (pre > 0)
    assert want.sum() > 0 and torch.equal(got, want)
    assert int(valid.sum()) == int(want.sum())  # no column twice


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's compile internals
def test_topk_indices_with_the_compiled_group_maxima(monkeypatch):
    from interlingua.sae import fused

    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    g = torch.Generator().manual_seed(1)
    for n in (2053, 1500):  # two widths: one compiled graph for both
        pre = torch.randn(16, n, generator=g).to(torch.bfloat16)
        got = kernels.topk_indices(pre, 40)
        if not fused.compiling():
            pytest.skip("torch.compile is not available here")
        assert torch.equal(pre.gather(1, got).sort(1, descending=True).values, torch.topk(pre, 40, dim=1).values)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's compile internals
def test_gather_dot_and_scatter_rows_match_dense_formulas(monkeypatch):
    from interlingua.sae import fused

    g = torch.Generator().manual_seed(11)
    table = torch.randn(30, 7, generator=g, dtype=torch.float64)
    rows = torch.randn(9, 7, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 30, (9, 6), generator=g)
    idx[0] = 0  # a row of repeats (padding)
    idx[1, :3] = idx[1, 3]  # repeats mixed with other columns
    weights = torch.randn(9, 6, generator=g, dtype=torch.float64)
    dots = torch.einsum("bkd,bd->bk", table[idx], rows)
    assert torch.allclose(kernels._gather_dot_sampled(idx, table, rows), dots, atol=1e-12)
    assert torch.allclose(kernels._gather_dot_dense(idx, table, rows), dots, atol=1e-12)
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)  # the compiled formula, at two code widths
    for width in (6, 4):
        got = kernels.gather_dot(idx[:, :width], table, rows)
        if not fused.compiling():
            pytest.skip("torch.compile is not available here (the sampled matmul is used instead)")
        assert torch.allclose(got, dots[:, :width], atol=1e-12)
    dense = torch.zeros(30, 7, dtype=torch.float64).index_add_(
        0, idx.flatten(), (weights[:, :, None] * rows[:, None, :]).reshape(-1, 7))
    assert torch.allclose(kernels.scatter_rows(idx, weights, rows, 30), dense, atol=1e-12)
