"""SAE training: exact resume, replayable batches, sources (tensor, cache, model), exclusions, errors."""

from __future__ import annotations

import pytest
import torch

from interlingua.activations import extract_to_disk
from interlingua.errors import InterlinguaError, UnknownHookError
from interlingua.sae import load_sae
from interlingua.sae.data import Batches, BatchState, CacheSource, Exclusion, ModelSource, TensorSource
from interlingua.sae.train import TrainConfig, Trainer, lr_at, train_sae
from interlingua.toy.data import planted_features


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=6000, seed=0):
    pf = planted_features(dim=16, n_features=48, expected_active=3, seed=seed)
    return pf.sample(n, torch.Generator().manual_seed(seed + 1))[0] * 40 + 3  # off-centre, large norm


def _cfg(**kw):
    base = dict(architecture="topk", d_sae=64, k=4, batch_size=128, total_vectors=128 * 24, lr=2e-3,
                warmup_steps=3, compute_dtype="float32", dead_after=128 * 4, checkpoint_every=7)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("arch,optimizer", [("topk", "sfadam"), ("batchtopk", "sfadam"), ("jumprelu", "sfadam"),
                                            ("topk", "adam")])
def test_resume_equals_uninterrupted(arch, optimizer, tmp_path):
    source = TensorSource({"a": _data(), "b": _data(seed=5)[:, :12]}, chunk_rows=1000)
    cfg = _cfg(architecture=arch, optimizer=optimizer)
    whole = Trainer(source, cfg, tmp_path / "whole").run(progress=False)
    first = Trainer(source, cfg, tmp_path / "parts")
    first.run(progress=False, stop_after=10)  # 10 steps: mid-chunk, between checkpoints
    assert first.step == 10 and (tmp_path / "parts" / "checkpoint" / "trainer.json").is_file()
    del first
    second = Trainer(source, cfg, tmp_path / "parts")
    assert second.resumed_from == 10
    parts = second.run(progress=False)
    for hook in ("a", "b"):
        for name, p in whole.saes[hook].state_dict().items():
            assert torch.equal(p, parts.saes[hook].state_dict()[name]), (hook, name)
        saved = load_sae(tmp_path / "parts" / hook)
        assert torch.equal(saved.W_dec, whole.saes[hook].W_dec)
    assert (tmp_path / "parts" / "training.json").is_file()


def test_checkpoint_of_another_job_is_refused(tmp_path):
    source = TensorSource(_data())
    Trainer(source, _cfg(), tmp_path).run(progress=False, stop_after=2)
    with pytest.raises(InterlinguaError, match="different training job"):
        Trainer(source, _cfg(k=5), tmp_path)
    fresh = Trainer(source, _cfg(k=5), tmp_path, overwrite=True)
    assert fresh.step == 0


def test_batches_replay_from_state():
    source = TensorSource(torch.arange(50.0)[:, None], chunk_rows=7)
    full = Batches(source, 6, seed=3)
    seen = [next(full)["x"].squeeze(1) for _ in range(20)]
    # every row once per epoch, and chunks/rows shuffled
    first_epoch = torch.cat(seen)[:48]
    assert len(set(first_epoch.tolist())) == 48
    assert not torch.equal(first_epoch, torch.arange(48.0))
    replay = Batches(source, 6, seed=3)
    for _ in range(9):
        next(replay)
    state = BatchState(**vars(replay.state))
    resumed = Batches(source, 6, seed=3, state=state)
    for i in range(9, 20):
        assert torch.equal(next(resumed)["x"].squeeze(1), seen[i])


def test_lr_schedule():
    cfg = _cfg(total_vectors=128 * 100, warmup_steps=10, decay_fraction=0.2)
    lrs = [lr_at(s, cfg, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0 and lrs[79] == 1.0
    assert lrs[90] == pytest.approx(0.5) and lrs[99] == pytest.approx(0.05)


def test_trained_sae_acts_on_raw_activations():
    x = _data()
    result = train_sae(TensorSource(x), _cfg(total_vectors=128 * 60))
    sae = result.saes["x"]
    held = _data(1000, seed=0)[-1000:]
    fvu = float((sae(held) - held).pow(2).sum() / (held - held.mean(0)).pow(2).sum())
    assert fvu < 0.5  # the input scale is folded in: the SAE works on the unscaled data
    assert sae.cfg.provenance["input_scale"] == pytest.approx(4.0 / float(x[:128].norm(dim=1).mean()), rel=0.5)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)
    assert result.summary["steps"] == 60 and result.summary["hooks"]["x"]["train_l0_ema"] <= 4


def test_auxk_trains_dead_latents_only_through_the_aux_loss():
    from interlingua.sae import SAEConfig, SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig("topk", 16, 64, k=4), seed=1)
    x = _data(200) / 40
    sae.init_b_dec_(x)
    dead = torch.zeros(64, dtype=torch.bool)
    dead[32:] = True
    out = sae.losses(x, dead_mask=dead, aux_k=8)
    used = torch.zeros(64, dtype=torch.bool)
    used[out.code.indices.flatten()] = True
    out.loss.backward()
    assert sae.W_dec.grad[~used].abs().sum() == 0  # main loss: only selected latents learn
    sae.zero_grad()
    out = sae.losses(x, dead_mask=dead, aux_k=8)
    out.auxk.backward()
    assert float(out.auxk.detach()) > 0
    touched = sae.W_dec.grad.abs().sum(1) > 0
    assert touched[32:].sum() >= 8 and not touched[:32].any()  # aux loss: dead latents only


def test_errors_are_clear():
    bad = _data()
    bad[7, 3] = float("nan")
    with pytest.raises(InterlinguaError, match="NaN"):
        train_sae(TensorSource(bad), _cfg())
    with pytest.raises(InterlinguaError, match="0 rows"):
        TensorSource(torch.zeros(0, 16))
    with pytest.raises(InterlinguaError, match="all zero"):
        train_sae(TensorSource(torch.zeros(300, 16)), _cfg())
    with pytest.raises(InterlinguaError, match="architecture"):
        TrainConfig(architecture="gated")


def test_cache_source_excludes_bos_and_outliers(llama, tmp_path):
    texts = ["The cat sat on the mat and looked out of the window for a while."] * 3 + ["Another short line."]
    cache = extract_to_disk(llama, texts, ["resid_post.1", "resid_post.2"], tmp_path / "cache", shard_tokens=20,
                            progress=False)
    acts = cache.load()
    src = CacheSource(cache, hooks=["resid_post.2"], exclusion=Exclusion(skip_first=1, outlier_factor=0),
                      shards_per_chunk=1)
    rows = sum(len(src.chunk(i)["resid_post.2"]) for i in range(src.n_chunks()))
    assert rows == int((acts.pos >= 1).sum())
    # a planted outlier row is excluded by the norm rule
    with pytest.raises(InterlinguaError, match="resid_post.7"):
        CacheSource(cache, hooks=["resid_post.7"])
    norms = acts["resid_post.2"].norm(dim=1)
    keep = Exclusion(skip_first=0, outlier_factor=1.2).keep(acts, ["resid_post.2"])
    assert torch.equal(keep, norms <= 1.2 * norms.median())


def test_model_source_streams_several_hooks(llama, tmp_path):
    texts = [f"Sentence number {i} is about cats, dogs and the weather today." for i in range(12)]
    src = ModelSource(llama, texts, ["resid_post.1", "resid_post.3"], docs_per_chunk=5)
    assert src.n_chunks() == 3
    chunk = src.chunk(0)
    assert chunk["resid_post.1"].shape == chunk["resid_post.3"].shape and chunk["resid_post.1"].shape[1] == 64
    result = Trainer(src, _cfg(d_sae=32, batch_size=64, total_vectors=64 * 6), tmp_path).run(progress=False)
    assert set(result.saes) == {"resid_post.1", "resid_post.3"}
    assert load_sae(tmp_path / "resid_post.3").cfg.hook_name == "resid_post.3"
    with pytest.raises(UnknownHookError, match="resid_post"):
        ModelSource(llama, texts, ["resid_post.99"])


def test_schedule_free_adam_matches_its_definition():
    """z takes Adam-normalised steps, x averages z with weights γ², the parameter holds y = (1−β₁)z + β₁x."""
    from interlingua.sae.optim import ScheduleFreeAdam

    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(3, 5, generator=g, dtype=torch.float64))
    opt = ScheduleFreeAdam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    z, x, v = p.detach().clone(), p.detach().clone(), torch.zeros_like(p)
    wsum = 0.0
    for t, lr in enumerate((0.05, 0.1, 0.1, 0.1), start=1):
        grad = torch.randn(3, 5, generator=g, dtype=torch.float64)
        if t in (2, 3):
            grad[1] = 0  # an idle row: its moments decay, its y still interpolates
        opt.param_groups[0]["lr"] = lr
        p.grad = grad.clone()
        opt.step()
        v = 0.99 * v + 0.01 * grad ** 2
        z = z - lr * grad / ((v / (1 - 0.99 ** t)).sqrt() + 1e-8)
        wsum += lr ** 2
        x = (1 - lr ** 2 / wsum) * x + (lr ** 2 / wsum) * z
        assert torch.allclose(p.detach(), 0.1 * z + 0.9 * x, atol=1e-12)
        assert torch.allclose(opt.averaged(p), x, atol=1e-12)


def test_schedule_free_unit_rows_equals_separate_constraint_passes():
    from interlingua.sae.optim import ScheduleFreeAdam

    g = torch.Generator().manual_seed(1)
    w0 = torch.randn(700, 9, generator=g, dtype=torch.float64)
    w0 /= w0.norm(dim=1, keepdim=True)
    fused, plain = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    opt_f = ScheduleFreeAdam([{"params": [fused], "unit_rows": True}], lr=0.05)
    opt_p = ScheduleFreeAdam([plain], lr=0.05)
    for _ in range(3):
        grad = torch.randn(700, 9, generator=g, dtype=torch.float64)
        fused.grad = grad.clone()
        opt_f.step()
        with torch.no_grad():
            grad -= (grad * plain).sum(1, keepdim=True) * plain
            plain.grad = grad
            opt_p.step()
            plain /= plain.norm(dim=1, keepdim=True)
        assert torch.allclose(fused, plain, atol=1e-12)
        assert torch.allclose(fused.norm(dim=1), torch.ones(700, dtype=torch.float64))



@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's compile internals
def test_compiled_optimizer_step_equals_eager(monkeypatch):
    """Large tensors take a torch.compile-fused step; it must compute the eager step (to float rounding)."""
    from interlingua.sae import fused, optim

    g = torch.Generator().manual_seed(3)
    w0 = torch.randn(64, 8, generator=g)
    w0 /= w0.norm(dim=1, keepdim=True)
    params = {mode: torch.nn.Parameter(w0.clone()) for mode in ("eager", "compiled")}
    opts = {m: optim.ScheduleFreeAdam([{"params": [p], "unit_rows": True}], lr=0.05) for m, p in params.items()}
    for _ in range(3):
        grad = torch.randn(64, 8, generator=g)
        for mode, p in params.items():
            monkeypatch.setattr(fused, "MIN_ELEMENTS", 0 if mode == "compiled" else 1 << 60)
            p.grad = grad.clone()
            opts[mode].step()
    if not fused.compiling():
        pytest.skip("torch.compile is not available here (the eager step is used instead)")
    assert optim._fused_step.compiled is not None
    assert torch.allclose(params["compiled"], params["eager"], atol=1e-6)
    assert torch.allclose(opts["compiled"].averaged(params["compiled"]), opts["eager"].averaged(params["eager"]),
                          atol=1e-5)


def test_checkpoint_write_killed_at_any_instant_resumes(tmp_path, kill_instants):
    """Whatever instant of a checkpoint write a kill hits, the rerun resumes and ends identical."""
    source = TensorSource(_data(), chunk_rows=1000)
    cfg = _cfg()
    whole = Trainer(source, cfg, tmp_path / "whole").run(progress=False)
    trainer = Trainer(source, cfg, tmp_path / "out")
    trainer.run(progress=False, stop_after=7)  # the first checkpoint, at step 7
    shots = kill_instants(tmp_path / "out", lambda: trainer.run(progress=False, stop_after=7))  # the second
    assert len(shots) >= 8
    resumed_from = set()
    for shot in shots:
        again = Trainer(source, cfg, shot)
        resumed_from.add(again.resumed_from)
        assert again.resumed_from in (7, 14), shot
        result = again.run(progress=False)
        assert torch.equal(result.saes["x"].W_dec, whole.saes["x"].W_dec)
        # the finished job leaves its own files only: no temporary or set-aside copies
        assert sorted(p.name for p in shot.iterdir()) == ["checkpoint", "training.json", "x"], shot
    assert resumed_from == {7, 14}


def test_exported_sae_replaced_under_a_kill_loads_whole(tmp_path, kill_instants):
    from interlingua.sae.files import save_sae

    source = TensorSource(_data())
    first = train_sae(source, _cfg(total_vectors=128 * 4)).saes["x"]
    second = train_sae(source, _cfg(total_vectors=128 * 8)).saes["x"]
    save_sae(first, tmp_path / "out" / "sae")
    for shot in kill_instants(tmp_path / "out", lambda: save_sae(second, tmp_path / "out" / "sae")):
        loaded = load_sae(shot / "sae")
        assert any(torch.equal(loaded.W_dec, s.W_dec) for s in (first, second)), shot


def test_checkpoint_torn_by_an_older_version_gives_a_clear_error(tmp_path):
    source = TensorSource(_data())
    Trainer(source, _cfg(), tmp_path).run(progress=False, stop_after=7)
    (tmp_path / "checkpoint" / "state.safetensors").unlink()
    with pytest.raises(InterlinguaError, match="incomplete.*--overwrite"):
        Trainer(source, _cfg(), tmp_path)
    assert Trainer(source, _cfg(), tmp_path, overwrite=True).step == 0


def test_diverging_training_stops_with_a_clear_message_and_saves_no_sae(tmp_path):
    """A learning rate far too high: the run stops on the averaged FVU, not after exporting a useless SAE."""
    with pytest.raises(InterlinguaError, match=r"training at x diverged: .* reached .* Lower the learning rate"):
        Trainer(TensorSource(_data()), _cfg(lr=10.0), tmp_path).run(progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "training.json").exists()


@pytest.mark.parametrize("bad", [dict(d_sae=0), dict(k=0), dict(lr=-1.0), dict(lr=float("nan")), dict(lr=0.0),
                                 dict(checkpoint_every=0), dict(dead_after=0), dict(aux_coefficient=float("inf")),
                                 dict(sparsity_coefficient=-0.5), dict(expansion=0), dict(decay_fraction=1.5)])
def test_config_numbers_out_of_range_are_refused(bad):
    name = next(iter(bad))
    with pytest.raises(InterlinguaError, match=name):
        _cfg(**bad)


@pytest.mark.parametrize("bad", [dict(skip_first=-1), dict(outlier_factor=0.5), dict(outlier_factor=float("nan"))])
def test_exclusion_out_of_range_is_refused(bad):
    with pytest.raises(InterlinguaError, match=next(iter(bad))):
        Exclusion(**bad)
