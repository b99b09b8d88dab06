"""SAE evaluation, latent matching and the `interlingua sae` commands (tiny in-process models)."""

from __future__ import annotations

import json

import pytest
import torch

from interlingua.activations import extract, extract_to_disk
from interlingua.cli import main
from interlingua.errors import InterlinguaError
from interlingua.sae import SAEConfig, SparseAutoencoder, load_sae
from interlingua.report.sae import latent_card
from interlingua.sae.evaluate import (LatentSnippets, density_histogram, downstream_loss, reconstruction_metrics,
                                      top_snippets)
from interlingua.sae.match import correlation, match_latents


pytestmark = pytest.mark.usefixtures("one_thread")


def signed_basis_sae(d: int, hook: str = "resid_post.1", scale: float = 1.0) -> SparseAutoencoder:
    """A TopK SAE with latents ±e_i and k = d: it reconstructs any input exactly (scale 1)."""
    sae = SparseAutoencoder(SAEConfig("topk", d, 2 * d, k=d, hook_name=hook))
    basis = torch.cat([torch.eye(d), -torch.eye(d)])
    with torch.no_grad():
        sae.encoder.copy_(basis)
        sae.W_dec.copy_(basis * scale)
    return sae


def test_reconstruction_metrics_of_exact_and_shrunk_dictionaries():
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) + 2.0
    m = reconstruction_metrics(signed_basis_sae(6), x)
    assert m["fvu"] < 1e-10 and m["cosine"] == pytest.approx(1.0)
    assert m["l0"] == pytest.approx(6.0) and m["l2_ratio"] == pytest.approx(1.0)
    assert m["relative_reconstruction_bias"] == pytest.approx(1.0)
    assert sum(m["density_histogram"]["counts"]) == 12
    half = reconstruction_metrics(signed_basis_sae(6, scale=0.5), x)
    assert half["l2_ratio"] == pytest.approx(0.5) and half["relative_reconstruction_bias"] == pytest.approx(2.0)
    assert half["fvu"] > 0.1
    with pytest.raises(InterlinguaError, match="d_in=6"):
        reconstruction_metrics(signed_basis_sae(6), torch.randn(3, 5))


def test_density_histogram_bins():
    density = torch.tensor([0.0, 0.0, 5e-7, 2e-6, 0.5, 0.05, 1.0])
    h = density_histogram(density)
    assert h["bins"][0] == "dead" and h["counts"][0] == 2 and sum(h["counts"]) == 7
    assert h["counts"][1] == 1 and h["counts"][2] == 1 and h["counts"][-1] == 2 and h["counts"][-2] == 1


def test_downstream_loss_exact_sae_recovers_everything(llama):
    texts = ["The cat sat on the mat and looked at the dog.", "A short second text about rain and wind."]
    exact = downstream_loss(llama, signed_basis_sae(64), texts, skip_first=1)
    assert exact["ce_sae"] == pytest.approx(exact["ce_clean"], abs=1e-4)
    assert exact["kl_sae"] < 1e-6 and exact["kl_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert exact["kl_zero"] > 1e-3
    # CE recovered is defined only when zero-ablation raises the loss (not always so on a random tiny model)
    if exact["ce_zero"] > exact["ce_clean"] + 1e-6:
        assert exact["ce_recovered"] == pytest.approx(1.0, abs=1e-3)
    else:
        assert exact["ce_recovered"] is None
    broken = signed_basis_sae(64)
    with torch.no_grad():
        broken.W_dec.zero_()
    zero = downstream_loss(llama, broken, texts, skip_first=1)
    assert zero["ce_sae"] == pytest.approx(zero["ce_zero"], abs=1e-4)
    assert zero["kl_recovered"] == pytest.approx(0.0, abs=1e-4)


def test_top_snippets_point_at_the_firing_tokens(llama):
    texts = ["The cat sat on the mat.", "Dogs run in the park every day."]
    acts = extract(llama, texts, "resid_post.1")
    sae = signed_basis_sae(64)
    lat = top_snippets(sae, acts, n_latents=3, per_latent=2)
    assert len(lat) == 3
    for entry in lat:
        s = entry["snippets"][0]
        row = int(((acts.doc == s["doc"]) & (acts.pos == s["pos"])).nonzero()[0, 0])
        with torch.no_grad():
            value = float(sae.dense_latents(acts["resid_post.1"][row:row + 1])[0, entry["latent"]])
        assert value == pytest.approx(s["activation"], abs=1e-4)
        assert s["left"] + s["token"] + s["right"] in texts[s["doc"]]
    cards = "".join(latent_card(LatentSnippets.from_json(e)) for e in lat)
    assert cards.count("<mark") == sum(len(e["snippets"]) for e in lat)


def test_match_finds_a_permuted_copy_and_the_null_does_not():
    g = torch.Generator().manual_seed(0)
    sae_a = SparseAutoencoder(SAEConfig("topk", 16, 64, k=4), seed=3)
    sae_b = SparseAutoencoder(SAEConfig("topk", 16, 64, k=4), seed=3)
    perm = torch.randperm(64, generator=g)
    with torch.no_grad():
        for name in ("encoder", "W_dec", "b_enc"):
            getattr(sae_b, name).copy_(getattr(sae_a, name)[perm])
    x = torch.randn(3000, 16, generator=g)
    r = match_latents(sae_a, x, sae_b, x, min_fires=5, n_null=2)
    assert r.summary.fraction_above == pytest.approx(1.0)
    inverse = torch.argsort(perm)
    assert all(inverse[a] == b for a, b in zip(r.latents_a, r.latents_b))
    assert r.summary.null_fraction_above_max < 0.1
    other = SparseAutoencoder(SAEConfig("topk", 16, 64, k=4), seed=99)
    unrelated = match_latents(sae_a, x, other, torch.randn(3000, 16, generator=g), min_fires=5, n_null=1)
    assert unrelated.summary.fraction_above < 0.1
    assert torch.allclose(correlation(x[:, :2], x[:, :2]).diagonal(), torch.ones(2, dtype=torch.float64))


def _json_out(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_train_eval_match(llama, gemma, tmp_path, capsys, monkeypatch):
    from interlingua.models.controls import random_init_copy
    from interlingua.sae import cli as sae_cli

    texts = [f"Line {i}: the cat and the dog walked to the river in the morning." for i in range(30)]
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    cache = extract_to_disk(llama, texts, ["resid_post.1"], tmp_path / "cache", progress=False)
    common = ["--latents", "32", "--k", "4", "--vectors", "1024", "--batch-size", "128", "--json"]
    out = _json_out(capsys, ["sae", "train", "--cache", str(cache.path), "--out", str(tmp_path / "a"), *common])
    assert out["steps"] == 8 and set(out["saes"]) == {"resid_post.1"}
    sae = load_sae(tmp_path / "a" / "resid_post.1")
    assert sae.cfg.model_name == "tiny-llama" and sae.d_sae == 32
    again = _json_out(capsys, ["sae", "train", "--cache", str(cache.path), "--out", str(tmp_path / "a"), *common])
    assert again["steps"] == 8  # finished job: nothing more to do

    models = {"tiny-llama": llama, "tiny-gemma3": gemma}

    def fake_model(name, dtype, random_init=None):
        m = models[name]
        return random_init_copy(m, seed=random_init) if random_init is not None else m

    monkeypatch.setattr(sae_cli, "_model", fake_model)
    _json_out(capsys, ["sae", "train", "--model", "tiny-llama", "--hook", "resid_post.1", "--text-file",
                       str(tmp_path / "texts.txt"), "--random-init", "0", "--out", str(tmp_path / "r"), *common])
    report = _json_out(capsys, ["sae", "eval", "--sae", str(tmp_path / "a" / "resid_post.1"), "--baseline",
                                str(tmp_path / "r" / "resid_post.1"), "--text-file", str(tmp_path / "texts.txt"),
                                "--max-docs", "4", "--snippets", "3", "--html", str(tmp_path / "s.html"), "--json"])
    for side in ("main", "baseline"):
        assert 0 <= report[side]["reconstruction"]["fvu"] < 2 and "ce_recovered" in report[side]["downstream"]
    assert report["baseline"]["model"] == "tiny-llama[random-init]"
    assert len(report["main"]["latents"]) == 3 and (tmp_path / "s.html").read_text().count("<mark") > 0

    _json_out(capsys, ["sae", "train", "--model", "tiny-gemma3", "--hook", "resid_post.2", "--text-file",
                       str(tmp_path / "texts.txt"), "--out", str(tmp_path / "g"), *common])
    _json_out(capsys, ["sae", "train", "--cache", str(cache.path), "--out", str(tmp_path / "a2"), "--seed", "1",
                       *common])
    m = _json_out(capsys, ["sae", "match", "--sae-a", str(tmp_path / "a" / "resid_post.1"), "--sae-b",
                           str(tmp_path / "g" / "resid_post.2"), "--sae-a2", str(tmp_path / "a2" / "resid_post.1"),
                           "--text-file", str(tmp_path / "texts.txt"), "--min-fires", "2", "--json"])
    assert m["cross"]["n_words"] > 50 and 0 <= m["cross"]["fraction_above"] <= 1
    assert "seed_ceiling" in m and m["seed_ceiling"]["n_latents_a"] > 0


def test_cli_errors(tmp_path, capsys):
    assert main(["sae", "train", "--out", str(tmp_path / "x")]) != 0
    assert "--model" in capsys.readouterr().err
    assert main(["sae", "eval", "--sae", str(tmp_path)]) != 0
    assert "not an SAE directory" in capsys.readouterr().err
