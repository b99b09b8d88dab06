"""Readout transfer: exact on a synthetic pair B = A·R + noise, and the whole pipeline on tiny models."""

import json
import pytest
import torch

from interlingua.activations import Reader
from interlingua.concepts import find_concept
from interlingua.concepts.dataset import from_dict
from interlingua.concepts.methods import Readout
from interlingua.errors import InterlinguaError
from interlingua.models.controls import lexical_only_copy, random_init_copy
from interlingua.similarity import r2_score
from interlingua.translate import TranslateConfig, build_shared_text, fit_transfer, paired_words, recovery, translate_concept
from interlingua.translate.pairs import SOURCE, TARGET
from interlingua.translate.shared_text import CONCEPT_TRAIN
from interlingua.translate.translate import source_scores

pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert r2_score(score_a[2000:], readout(xb[2000:])) > 0.9999
    # the translated direction is the one that maps back onto A's: R w_B = w_A
    torch.testing.assert_close((r.double() @ readout.weight.double()).float(), concept.weight, rtol=1e-3, atol=1e-3)


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
    pairs = paired_words(llama, gemma, texts, ["resid_post.1"], ["resid_post.2"], shifted_b=True)
    n = len(pairs.alignment)
    assert pairs.a["resid_post.1"].shape == (n, 64) and pairs.b["resid_post.2"].shape == (n, 64)
    from interlingua.activations import extract
    acts = extract(llama, texts, "resid_post.1")
    torch.testing.assert_close(pairs.alignment.gather(acts, SOURCE, "resid_post.1"), pairs.a["resid_post.1"],
                               rtol=1e-4, atol=1e-5)
    # the off-by-one rows are B one token before each aligned word's last token, from the same pass
    b_acts = extract(gemma, texts, "resid_post.2")
    doc, pos = pairs.alignment.flat(TARGET)
    row = {(int(d), int(p)): i for i, (d, p) in enumerate(zip(b_acts.doc, b_acts.pos))}
    expect = torch.stack([b_acts["resid_post.2"][row[(int(d), int(p) - 1)]] for d, p in zip(doc, pos)])
    torch.testing.assert_close(pairs.b_shifted["resid_post.2"], expect, rtol=1e-4, atol=1e-5)


def test_reader_reads_each_text_once(llama):
    reader = Reader(llama)
    texts = ["The cat sat on the mat.", "A second text, a little longer than the first one."]
    first = reader.read(texts, ["resid_post.1", "resid_post.3"])
    read = reader.tokens_read
    again = reader.read(texts[::-1], "resid_post.3")
    assert reader.tokens_read == read  # served from the memo
    torch.testing.assert_close(again["resid_post.3"], first["resid_post.3"].flip(0))
    reader.read(texts, "resid_post.2")
    assert reader.tokens_read == 2 * read  # a new hook: one more pass


def _dataset():
    names = ["Anna", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu"]
    items = [{"positive": f"{n} said yes {i}.", "negative": f"{n} said no {i}."} for i, n in enumerate(names * 4)]
    return from_dict({"name": "yes_no", "train": items[:30], "test": items[30:42], "ood": items[42:]})


@pytest.fixture(scope="module")
def yes_no(llama):
    ds = _dataset()
    return ds, find_concept(llama, ds, hook="resid_post.2", n_boot=10, n_null=2)


FAST = dict(corpus_docs=12, draws=20, n_boot=50)


def test_translate_pipeline_on_tiny_models(llama, gemma, yes_no):
    ds, ca = yes_no
    tr = translate_concept(ca, llama, gemma, ds, TranslateConfig(layers_b=(1, 3), mlp=True, **FAST),
                           extra_texts=["Some extra words, as if sampled from the source model."])
    m = tr.metrics
    assert m.shared_text.per_source == {"corpus": 12, "extra": 1} and m.label_free is True
    assert set(m.methods) == {"readout_transfer", "procrustes_map", "mlp_readout"}
    assert {"r2_train", "r2_heldout", "linear_r2_heldout", "overfit", "beats_linear"} <= set(m.methods["mlp_readout"].extra)
    assert m.retrieval.k == 24 and 1 <= m.retrieval.rank <= 24  # 23 built-ins + this one
    assert m.neuron_search.n_units == gemma.model.config.intermediate_size
    assert m.source == "tiny-llama" and m.target_hook in ("resid_post.1", "resid_post.3")
    assert m.test.recovery is not None and m.ood.fidelity is not None and m.test.rank_correlation is not None
    flat = tr.to_json()  # the JSON keeps the flat keys scripts read before results had types
    for key in ("recovery_test", "recovery_ood", "auroc_native_target", "auroc_transfer_test", "source_layer",
                "target_layer", "fidelity_test", "fidelity_ood", "recovery_test_ci", "recovery_ood_ci", "shared_text",
                "auroc_bag_of_words_test", "rank_correlation_test", "fidelity_test_null", "fidelity_ood_null"):
        assert key in flat, key
    assert flat["fidelity_test"] == m.test.fidelity and flat["recovery_ood_ci"] == m.ood.recovery_ci
    assert flat["fidelity_test_null"]["draws"] == 20 and "runs" not in flat["fidelity_test_null"]
    assert m.native_target_same_layers is True and m.native_target_layers == [1, 3]
    assert set(tr.controls) == {"shuffled_pairing", "label_shuffle", "synthetic_target"}
    for name, c in tr.controls.items():
        assert c.kind and c.must and c.statistic, name
        if c.kind == "must_fail":
            assert c.p_value is not None and c.draws == 20 and len(c.null("test").runs) == 20
    assert len(tr.layer_map) == 2 and tr.target.weight.shape == (64,)
    assert {(r.hook_a, r.hook_b) for r in tr.layer_pair_map} == {
        ("resid_post.1", "resid_post.1"), ("resid_post.1", "resid_post.3"),
        ("resid_post.2", "resid_post.1"), ("resid_post.2", "resid_post.3")}
    assert m.cka_debiased_chosen_pair.band is not None and m.cka_debiased_chosen_pair.p_value is not None
    assert m.cost.tokens_read_source > 0
    # per-text scores of both models, and the examples with both models' per-word scores
    assert set(tr.scores) == {"test", "ood"} and len(tr.scores["test"].score_a) == len(ds.split("test"))
    kinds = {(e.split, e.kind) for e in tr.examples}
    assert ("test", "disagree") in kinds and ("test", "agree") in kinds
    for e in tr.examples:
        assert e.text == tr.scores[e.split].texts[e.index]
        for tokens in (e.tokens_a, e.tokens_b):
            assert tokens.spans and all(0 <= s < t <= len(e.text) for s, t, _ in tokens.spans)
    assert e.tokens_a.model == "tiny-llama" and e.tokens_b.model == "tiny-gemma3"


def test_translation_json_round_trips_through_the_typed_results(llama, gemma, yes_no, tmp_path):
    """Saved and loaded, a translation gives back equal typed results and the same JSON, key for key."""
    from interlingua.translate import Translation
    from interlingua.translate.results import TranslationResult

    ds, ca = yes_no
    tr = translate_concept(ca, llama, gemma, ds, layers_b=(3,), controls=("all",), **FAST)
    back = Translation.load(tr.save(tmp_path / "tr"))
    assert back.metrics == tr.metrics and back.controls == tr.controls and back.examples == tr.examples
    assert back.to_json() == tr.to_json()
    blob = json.loads((tmp_path / "tr" / "translation.json").read_text())
    blob["metrics"]["a_key_from_a_newer_version"] = {"kept": True}
    again = TranslationResult.from_file_json(blob).metrics
    assert again.extra == {"a_key_from_a_newer_version": {"kept": True}}
    assert again.to_json()["a_key_from_a_newer_version"] == {"kept": True}
    flat = tr.to_json()  # the flat form (--json, the demo's rows) reads back to the same result
    assert TranslationResult.from_json(flat).to_json() == flat


def test_concept_texts_are_scored_out_of_fold(llama, gemma, yes_no):
    """Words of the concept's own train texts get A's score from probes that never saw them."""
    ds, ca = yes_no
    shared = build_shared_text(corpus_docs=6, dataset=ds, concept_texts=True)
    assert not shared.label_free and shared.counts()[CONCEPT_TRAIN] == 60
    pairs = paired_words(llama, gemma, shared.texts, [ca.hook], ["resid_post.1"])
    train = ds.split("train")
    x_train = Reader(llama).read(train.texts, ca.hook)[ca.hook]
    oof = source_scores(ca, pairs.a[ca.hook], pairs.doc, shared, train, x_train, folds=5)
    in_sample = ca.readout(pairs.a[ca.hook]).double()
    concept_rows = torch.isin(pairs.doc, shared.index(CONCEPT_TRAIN))
    assert torch.equal(oof[~concept_rows], in_sample[~concept_rows])  # corpus words: A's own readout
    assert not torch.allclose(oof[concept_rows], in_sample[concept_rows])  # concept words: cross-fitted
    # fold 0's words are scored by a probe fitted on the other folds only
    from interlingua.concepts.find import fit
    from interlingua.translate.readout import document_folds

    held = document_folds(train.templates, 5, 0) == 0
    probe = fit("logistic", x_train[~held], train.subset(torch.unique(train.groups[~held])))
    first_doc = int(shared.index(CONCEPT_TRAIN)[0])
    words = torch.isin(pairs.doc, first_doc + held.nonzero().squeeze(1))
    torch.testing.assert_close(oof[words], probe(pairs.a[ca.hook][words]).double(), rtol=1e-4, atol=1e-4)


def test_all_controls_run_on_tiny_models(llama, gemma, yes_no):
    ds, ca = yes_no
    tr = translate_concept(ca, llama, gemma, ds, layers_b=(3,), controls=("all",), **FAST)
    assert set(tr.controls) == {"shuffled_pairing", "label_shuffle", "off_by_one", "random_init_target",
                                "lexical_only_target", "synthetic_target"}
    for name, res in tr.controls.items():
        assert res.must and res.statistic, name
        if res.kind == "floor":
            assert res.difference_ci is not None and res.real is not None
    assert tr.controls["synthetic_target"].passed, tr.controls["synthetic_target"]


def test_sae_latents_join_the_unit_search(llama, gemma, yes_no):
    """An SAE on B with one latent planted along the translated readout: the search must rank it first."""
    from interlingua.sae import SAEConfig, SparseAutoencoder

    ds, ca = yes_no
    plain = translate_concept(ca, llama, gemma, ds, layers_b=(3,), controls=(), **FAST)
    sae = SparseAutoencoder(SAEConfig(architecture="relu", d_in=64, d_sae=48, hook_name="resid_post.3"), seed=0)
    with torch.no_grad():
        sae.b_dec.zero_()
        sae.b_enc.fill_(-1e4)  # every latent off ...
        w = plain.target.weight / plain.target.weight.norm()
        sae.W_enc[:, 17] = w * 1e3  # ... except 17, which reads the translated direction
        sae.b_enc[17] = -1e3 * float((w @ plain.target.mean)) + 1e4
    tr = translate_concept(ca, llama, gemma, ds, layers_b=(3,), controls=(), target_sae=sae, **FAST)
    found = tr.metrics.sae_latent_search
    assert found.extra["hook"] == "resid_post.3" and found.n_units == 48
    assert found.top[0]["unit"] == 17


def test_bad_configuration_is_refused_before_any_work(llama, gemma, yes_no):
    ds, ca = yes_no
    with pytest.raises(InterlinguaError, match="unknown control"):
        translate_concept(ca, llama, gemma, ds, layers_b=(1,), controls=("nope",))
    with pytest.raises(InterlinguaError, match="pos_weight"):
        TranslateConfig(pos_weight=float("nan"))
    with pytest.raises(InterlinguaError, match="draws"):
        TranslateConfig(draws=-1)
    with pytest.raises(InterlinguaError, match="at least 5 documents"):
        translate_concept(ca, llama, gemma, ds, layers_b=(1,), corpus_docs=3, controls=())


def test_control_models_differ_where_they_should(llama):
    rnd, lex = random_init_copy(llama), lexical_only_copy(llama)
    emb = lambda m: m.model.get_input_embeddings().weight  # noqa: E731
    assert torch.equal(emb(lex), emb(llama)) and not torch.equal(emb(rnd), emb(llama))
    p0 = lambda m: next(iter(m.model.base_model.layers[0].parameters())).detach()  # noqa: E731
    assert not torch.equal(p0(lex), p0(llama))
    assert abs(float(p0(rnd).std()) - float(p0(llama).std())) < 0.1 * float(p0(llama).std()) + 1e-6


def test_translation_save_killed_at_any_instant_loads_one_whole_translation(tmp_path, kill_instants):
    from interlingua.concepts import Concept
    from interlingua.translate import Translation

    def concept(seed):
        g = torch.Generator().manual_seed(seed)
        return Concept(name="c", model_name=f"m{seed % 2}", hook=f"resid_post.{seed}", method="logistic",
                       weight=torch.randn(8, generator=g), bias=0.0, mean=torch.zeros(8), std=torch.ones(8),
                       typical_norm=1.0)

    from interlingua.translate.results import ControlResult, TranslationMetrics

    old = Translation(source=concept(1), target=concept(2), metrics=TranslationMetrics(concept="old"))
    new = Translation(source=concept(3), target=concept(4), metrics=TranslationMetrics(concept="new"),
                      controls={"x": ControlResult(passed=True)})
    old.save(tmp_path / "out" / "tr")
    shots = kill_instants(tmp_path / "out", lambda: new.save(tmp_path / "out" / "tr"))
    runs = []
    for shot in shots:
        back = Translation.load(shot / "tr")
        want = old if back.metrics.concept == "old" else new
        assert (back.source.hook, back.target.hook, back.controls) == (want.source.hook, want.target.hook,
                                                                       want.controls), shot
        assert torch.equal(back.target.weight, want.target.weight)
        runs.append(back.metrics.concept)
    assert runs[0] == "old" and runs[-1] == "new"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "results.csv").write_text("1,2")
    with pytest.raises(InterlinguaError, match="results.csv.*new or empty directory"):
        new.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "results.csv").read_text() == "1,2"
