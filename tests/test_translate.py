"""Readout transfer: exact on a synthetic pair B = A·R + noise, and the pipeline on tiny models."""

import pytest
import torch

from interlingua.concepts import find_concept
from interlingua.concepts.dataset import from_dict
from interlingua.concepts.methods import Readout
from interlingua.models.controls import lexical_only_copy, random_init_copy
from interlingua.similarity import r2_score
from interlingua.translate import fit_transfer, paired_words, recovery, translate_concept
from interlingua.translate.pairs import SOURCE, TARGET


def synthetic_pair(n=3000, da=48, db=64, noise=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    xa = torch.randn(n, da, generator=g) * 2 + 1
    r = torch.randn(da, db, generator=g)
    xb = xa @ r + noise * torch.randn(n, db, generator=g)
    w_a = torch.randn(da, generator=g)
    return xa, xb, r, Readout(weight=w_a, bias=0.3)


def test_synthetic_pair_recovery_is_exact():
    xa, xb, r, concept = synthetic_pair()
    score_a = concept(xa)
    readout = fit_transfer(xb[:2000], score_a[:2000], lam=1e-8)
    held = readout(xb[2000:])
    assert r2_score(score_a[2000:], held) > 0.9999
    # the translated direction is the one that maps back onto A's: R w_B = w_A
    torch.testing.assert_close((r.double() @ readout.weight.double()).float(), concept.weight, rtol=1e-3, atol=1e-3)


def test_shuffled_pairing_destroys_the_transfer():
    xa, xb, _, concept = synthetic_pair()
    score_a = concept(xa)
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(1))
    readout = fit_transfer(xb[:2000][perm], score_a[:2000], lam=1e-2)
    assert abs(r2_score(score_a[2000:], readout(xb[2000:]))) < 0.05 or r2_score(score_a[2000:], readout(xb[2000:])) < 0


def test_cost_weights_keep_the_optimum():
    xa, xb, _, concept = synthetic_pair(noise=0.0)
    score_a = concept(xa)
    plain = fit_transfer(xb, score_a, lam=1e-9)
    weighted = fit_transfer(xb, score_a, lam=1e-9, pos_weight=5.0)
    torch.testing.assert_close(plain(xb), weighted(xb), rtol=1e-3, atol=1e-3)


def test_recovery_ratio():
    assert recovery(0.8, 0.9) == pytest.approx(0.75)
    assert recovery(0.8, 0.52) is None  # native near chance: undefined, not a number


def test_paired_words_line_up(llama, gemma):
    texts = ["The cat sat on the mat.", "Numbers 12 and 3.5, café!"]
    pairs = paired_words(llama, gemma, texts, ["resid_post.1"], ["resid_post.2"])
    n = len(pairs.alignment)
    assert pairs.a["resid_post.1"].shape == (n, 64) and pairs.b["resid_post.2"].shape == (n, 64)
    # row k of A is A's activation at the last token of aligned word k
    from interlingua.activations import extract
    acts = extract(llama, texts, "resid_post.1")
    torch.testing.assert_close(pairs.alignment.gather(acts, SOURCE, "resid_post.1"), pairs.a["resid_post.1"],
                               rtol=1e-4, atol=1e-5)
    assert TARGET in pairs.alignment.names


def test_control_models_differ_where_they_should(llama):
    rnd, lex = random_init_copy(llama), lexical_only_copy(llama)
    emb = lambda m: m.model.get_input_embeddings().weight  # noqa: E731
    assert torch.equal(emb(lex), emb(llama)) and not torch.equal(emb(rnd), emb(llama))
    p0 = lambda m: next(iter(m.model.base_model.layers[0].parameters())).detach()  # noqa: E731
    assert not torch.equal(p0(lex), p0(llama))
    assert abs(float(p0(rnd).std()) - float(p0(llama).std())) < 0.1 * float(p0(llama).std()) + 1e-6


def test_translate_pipeline_on_tiny_models(llama, gemma):
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})
    ca = find_concept(llama, ds, hook="resid_post.2", n_boot=10, n_null=2)
    tr = translate_concept(ca, llama, gemma, ds, layers_b=[1, 3], n_corpus_docs=4, mlp=True,
                           extra_texts=["Some extra words, as if sampled from the source model."])
    m = tr.metrics
    assert tr.target.provenance["shared_text"]["extra_texts"] == 1
    assert set(m["methods"]) == {"readout_transfer", "ridge_map", "procrustes_map", "mlp_readout"}
    assert {"r2_train", "r2_val", "linear_r2_val", "overfit", "recovery_test"} <= set(m["methods"]["mlp_readout"])
    assert m["retrieval"]["k"] == 24 and 1 <= m["retrieval"]["rank"] <= 24  # 23 built-ins + this one
    assert m["neuron_search"]["n_units"] == gemma.model.config.intermediate_size
    assert m["source"] == "tiny-llama" and m["target_hook"] in ("resid_post.1", "resid_post.3")
    assert {"recovery_test", "recovery_ood", "auroc_native_target", "auroc_transfer_test", "source_layer",
            "target_layer"} <= set(m)
    assert len(tr.layer_map) == 2 and tr.target.weight.shape == (64,)
    assert {(r["hook_a"], r["hook_b"]) for r in tr.layer_pair_map} == {
        ("resid_post.1", "resid_post.1"), ("resid_post.1", "resid_post.3"),
        ("resid_post.2", "resid_post.1"), ("resid_post.2", "resid_post.3")}
    assert {"value", "null_band", "p"} <= set(m["cka_debiased_chosen_pair"])


def test_sae_latents_join_the_unit_search(llama, gemma):
    """An SAE on B with one latent planted along the translated readout: the search must rank it first."""
    from interlingua.sae import SAEConfig, SparseAutoencoder

    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})
    ca = find_concept(llama, ds, hook="resid_post.2", n_boot=10, n_null=2)
    plain = translate_concept(ca, llama, gemma, ds, layers_b=[3], n_corpus_docs=4)
    sae = SparseAutoencoder(SAEConfig(architecture="relu", d_in=64, d_sae=48, hook_name="resid_post.3"), seed=0)
    with torch.no_grad():
        sae.b_dec.zero_()
        sae.b_enc.fill_(-1e4)  # every latent off ...
        w = plain.target.weight / plain.target.weight.norm()
        sae.W_enc[:, 17] = w * 1e3  # ... except 17, which reads the translated direction
        sae.b_enc[17] = -1e3 * float((w @ plain.target.mean)) + 1e4
    tr = translate_concept(ca, llama, gemma, ds, layers_b=[3], n_corpus_docs=4, target_sae=sae)
    found = tr.metrics["sae_latent_search"]
    assert found["hook"] == "resid_post.3" and found["n_units"] == 48
    assert found["top"][0]["unit"] == 17 and found["above_null"]


def test_controls_behave_on_tiny_models(llama, gemma):
    """Every control runs through the same code path and reports what it must do."""
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    ds = from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})
    ca = find_concept(llama, ds, hook="resid_post.2", n_boot=10, n_null=2)
    tr = translate_concept(ca, llama, gemma, ds, layers_b=[3], n_corpus_docs=4, controls=("all",))
    assert set(tr.controls) == {"shuffled_pairing", "label_shuffle", "off_by_one", "random_init_target",
                                "lexical_only_target", "self_translation", "synthetic_pair"}
    for name, res in tr.controls.items():
        assert {"value", "band", "must", "passed"} <= set(res), name
    assert tr.controls["synthetic_pair"]["passed"] and tr.controls["synthetic_pair"]["value"] > 0.99


def test_unknown_control(llama, gemma):
    items = [{"positive": f"p{i} yes.", "negative": f"p{i} no."} for i in range(30)]
    ds = from_dict({"name": "yn", "train": items[:20], "test": items[20:]})
    ca = find_concept(llama, ds, hook="resid_post.1", n_boot=5, n_null=1)
    from interlingua.errors import InterlinguaError
    with pytest.raises(InterlinguaError, match="unknown control"):
        translate_concept(ca, llama, gemma, ds, layers_b=[1], n_corpus_docs=2, controls=("nope",))
