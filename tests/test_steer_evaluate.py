"""Evaluation of steering: detectors, concept words, perplexity, KL, the sweep, the causal-check arithmetic."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from interlingua.activations import at_positions
from interlingua.concepts import find_concept, load_concept
from interlingua.steer import add, steered_texts
from interlingua.steer.causal import _interp, _kl_at_matched_effect, causal_check, summarize
from interlingua.steer.evaluate import (
    Evaluator,
    NeutralText,
    Settings,
    concept_token_sets,
    concept_words,
    continuation_perplexity,
    detector_scores,
    layer_directions,
    make_judge,
    prompt_baseline,
    random_direction,
    sweep,
)
from interlingua.report.steer import sweep_png, sweep_table
from interlingua.steer.results import CausalRecord, SweepResult
from interlingua.translate import Translation
from interlingua.translate.results import TranslationMetrics


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_sentiment():
    ds = load_concept("sentiment")
    return dataclasses.replace(ds, items={s: v[:12] for s, v in ds.items.items()})


@pytest.fixture(scope="module")
def llama_concept(llama, small_sentiment):
    return find_concept(llama, small_sentiment, hook="resid_post.2", n_boot=5, n_null=1)


def test_detector_scores_mean_and_last(llama, llama_concept):
    texts = ["The soup was delicious.", "", "The staff were rude and the room was dirty."]
    mean = detector_scores(llama_concept, texts, read="mean")
    last = detector_scores(llama_concept, texts, read="last")
    assert math.isnan(mean[1]) and math.isnan(last[1])
    ids = llama.tokenizer(texts[2])["input_ids"]
    acts = at_positions(llama, [texts[2]], "resid_post.2", [list(range(len(ids)))])["resid_post.2"]
    torch.testing.assert_close(mean[2], llama_concept.readout(acts).mean(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last[[0, 2]], llama_concept.score([texts[0], texts[2]]), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="read"):
        detector_scores(llama_concept, texts, read="first")


def test_judge_gap_is_positive_minus_negative_on_test(llama_concept, small_sentiment):
    j = make_judge("own", llama_concept, small_sentiment)
    test = small_sentiment.split("test")
    s = detector_scores(llama_concept, test.texts)
    assert j.gap == pytest.approx(float(s[test.binary].mean() - s[~test.binary].mean()), abs=1e-5)


def test_concept_words_and_token_sets(llama, small_sentiment):
    pos, neg = concept_words(small_sentiment)
    assert "delicious" in pos and "awful" in neg
    assert not set(pos) & set(neg)
    sets = concept_token_sets(llama, small_sentiment)
    assert sets is not None and len(sets[0]) and len(sets[1])
    assert not set(sets[0].tolist()) & set(sets[1].tolist())


def test_perplexity_matches_a_manual_computation(llama):
    prompt, new = llama.tokenizer("The quick brown")["input_ids"], llama.tokenizer(" fox jumps")["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(llama.model(torch.tensor([prompt + new])).logits[0].float(), -1)
    nll = -sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(new)) / len(new)
    got = continuation_perplexity(llama, [prompt, prompt], [new, []])  # an empty continuation counts for nothing
    assert got == pytest.approx(math.exp(nll), rel=1e-4)


def test_kl_on_neutral_text(tiny):
    nt = NeutralText.build(tiny, n_docs=2, max_tokens=12)
    v = random_direction(tiny.d_model, 0)
    assert nt.kl(tiny, [add(v, 0.0, hook="resid_post.1", typical_norm=1.0)]) == pytest.approx(0.0, abs=1e-6)
    small = nt.kl(tiny, [add(v, 0.2, hook="resid_post.1", typical_norm=10.0, positions="generated")])
    big = nt.kl(tiny, [add(v, 1.0, hook="resid_post.1", typical_norm=10.0)])
    assert 0 < small < big  # positions are overridden to 'all' for the KL: it measures the side effect everywhere
    # by hand, on the first row
    ids, mask = nt.ids[:1], nt.mask[:1]
    with torch.inference_mode():
        p = torch.log_softmax(tiny.model(input_ids=ids, attention_mask=mask).logits[0].float(), -1)
        from interlingua.steer import steering

        with steering(tiny, add(v, 1.0, hook="resid_post.1", typical_norm=10.0)):
            q = torch.log_softmax(tiny.model(input_ids=ids, attention_mask=mask).logits[0].float(), -1)
    kl_row = (p.exp() * (p - q)).sum(-1)[mask[0].bool()]
    nt1 = NeutralText(ids=ids, mask=mask, chunk=1)
    assert nt1.kl(tiny, [add(v, 1.0, hook="resid_post.1", typical_norm=10.0)]) == pytest.approx(float(kl_row.mean()),
                                                                                                rel=1e-4)


def test_prompt_baseline(small_sentiment):
    prompts, prefix = prompt_baseline(["I think"], small_sentiment)
    train = small_sentiment.split("train")
    assert prefix.splitlines() == [t for t, y in zip(train.texts, train.binary.tolist()) if y][:3]
    assert prompts == [prefix + "I think"]
    neg, _ = prompt_baseline(["I think"], small_sentiment, positive=False)
    negatives = [t for t, y in zip(train.texts, train.binary.tolist()) if not y][:3]
    assert neg[0].splitlines()[:3] == negatives and neg[0].endswith("I think")
    assert prompt_baseline(["x"], prefix="Be happy. ")[0] == ["Be happy. x"]


def test_sweep_rows_baselines_and_outputs(llama, llama_concept, small_sentiment, tmp_path):
    dirs = layer_directions(llama, small_sentiment, [1, 2])
    assert [d.hook for d in dirs] == ["resid_post.1", "resid_post.2"]
    assert all(abs(float(d.direction.norm()) - 1) < 1e-5 and d.typical_norm > 0 for d in dirs)
    ev = Evaluator(llama, ["The", "She said"], [make_judge("own", llama_concept, small_sentiment)],
                   token_sets=concept_token_sets(llama, small_sentiment), settings=Settings(max_new_tokens=4),
                   neutral=NeutralText.build(llama, n_docs=1, max_tokens=8))
    base, _ = prompt_baseline(ev.prompts, small_sentiment)
    res = sweep(ev, dirs, [0.5, 2.0], baseline_prompts=base)
    conds = [r.condition for r in res.rows]
    assert conds == ["unsteered", "prompt"] + ["steer", "random"] * 4
    un, pr = res.rows[0], res.rows[1]
    assert un.effect["own"] == 0.0 and un.kl == 0.0 and un.token_logodds_effect == 0.0
    assert pr.kl is None and pr.perplexity is not None
    steer = [r for r in res.rows if r.condition == "steer"]
    rand = [r for r in res.rows if r.condition == "random"]
    # norm-matched: same hook, strength and vector norm as the steering cell it follows
    for s, r in zip(steer, rand):
        assert (s.hook, s.strength, s.vector_norm) == (r.hook, r.strength, r.vector_norm)
        assert s.kl > 0 and r.kl > 0
    assert steer[1].kl > steer[0].kl  # stronger steering, larger side effect
    text = sweep_table(res)
    assert "unsteered" in text and "random" in text and "resid_post.2" in text
    blob = json.loads(json.dumps(res.to_json()))
    assert list(blob) == ["rows", "judges", "settings", "summary"]
    assert list(blob["rows"][2])[:5] == ["condition", "hook", "layer", "strength", "vector_norm"]
    assert "hook" not in blob["rows"][0] and list(blob["judges"][0]) == ["name", "model", "hook", "gap", "read"]
    assert blob["summary"]["judge"] == "own" and blob["summary"]["best_steer"]["hook"].startswith("resid_post.")
    assert SweepResult.from_json(blob).to_json() == blob
    assert sweep_png(res, tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 0


def test_steered_texts_toward_and_away(llama, llama_concept):
    toward = steered_texts(llama, llama_concept, 3, strength=2.0, max_new_tokens=6, seed=1)
    again = steered_texts(llama, llama_concept, 3, strength=2.0, max_new_tokens=6, seed=1)
    away = steered_texts(llama, llama_concept, 3, strength=2.0, toward=False, max_new_tokens=6, seed=1)
    assert toward == again and toward != away and len(toward) == 3 and all(isinstance(t, str) for t in toward)
    with pytest.raises(Exception, match="positive strength"):
        steered_texts(llama, llama_concept, 1, strength=-1.0)


def test_interpolation_and_matched_effect_kl():
    assert _interp(0.5, [0, 1], [0, 2]) == 1.0
    assert _interp(2.0, [0, 1], [0, 2]) is None
    # native: effect 0.4 at s=0.5 (KL 0.1), effect 0.8 at s=1 (KL 0.4); translated: effect 0.6 with KL 0.3
    ratio, basis = _kl_at_matched_effect([0.4, 0.8], [0.1, 0.4], 0.6, 0.3)
    assert ratio == pytest.approx(0.3 / 0.25) and "matched effect" in basis
    assert _kl_at_matched_effect([0.4, 0.8], [0.1, 0.4], 1.5, 0.3) == (None, "")  # outside the native range
    assert _kl_at_matched_effect([0.8, 0.4], [0.1, 0.4], 0.6, 0.3) == (None, "")  # native not monotone
    recs = [{"native_steers": True, "efficacy": 0.7, "random_efficacy": 0.05, "kl_ratio": 1.5},
            {"native_steers": True, "efficacy": 0.2, "random_efficacy": 0.3, "kl_ratio": 3.0},
            {"native_steers": False, "efficacy": None, "random_efficacy": None, "kl_ratio": None}]
    s = summarize(recs)
    assert s == {"concepts": 3, "native_steers": 2, "efficacy_at_least_0.5": 1, "efficacy_target_met": True,
                 "random_efficacy_within_0.1": 1, "kl_ratio_within_2": 1}


def test_causal_check_with_the_native_concept_as_translation_gives_efficacy_one(llama, gemma, small_sentiment,
                                                                             llama_concept):
    native = find_concept(gemma, small_sentiment, hook="resid_post.2", n_boot=5, n_null=1)
    tr = Translation(source=llama_concept, target=native, metrics=TranslationMetrics())
    rec = causal_check(tr, llama, gemma, small_sentiment, prompts=["The", "She said"], strengths=(1.0, 3.0),
                       native=native, settings=Settings(max_new_tokens=4))
    assert rec.hook == "resid_post.2" and [j.name for j in rec.judges] == ["A:tiny-llama", "B:tiny-gemma3"]
    for name, j in rec.by_judge.items():
        e = j.effects
        assert e.translated == e.native  # the same direction at the same strength
        if j.native_steers:
            assert j.efficacy == 1.0 and j.random_efficacy == round(e.random / e.native, 4)
        else:
            assert j.efficacy is None and "undefined" in j.reason
    conds = [(r.condition, r.strength) for r in rec.rows]
    assert conds == [("unsteered", None), ("prompt", None), ("translated", 1.0), ("native", 1.0),
                     ("translated", 3.0), ("native", 3.0), ("random", 3.0)]
    blob = json.loads(json.dumps(rec.to_json()))
    assert list(blob) == ["concept", "source", "target", "hook", "strengths", "typical_norm", "native_method",
                          "efficacy", "random_efficacy", "prompt_effect", "kl_ratio", "kl_ratio_basis",
                          "native_steers", "by_judge", "judges", "prompt_prefix", "targets", "rows", "translation"]
    assert list(blob["judges"][0]) == ["name", "model", "hook", "gap"]
    assert list(blob["rows"][2])[:4] == ["condition", "hook", "strength", "vector_norm"]  # no layer key here
    assert list(next(iter(blob["by_judge"].values()))) == ["native_steers", "reason", "efficacy", "random_efficacy",
                                                           "prompt_effect", "effects"]
    assert CausalRecord.from_json(blob).to_json() == blob
    with pytest.raises(Exception, match="positive strengths"):
        causal_check(tr, llama, gemma, small_sentiment, strengths=(0.0,), native=native)


def test_generate_input_checks(llama):
    from interlingua.steer import generate
    from interlingua.steer.generate import encode_prompts

    with pytest.raises(Exception, match="chat template"):
        encode_prompts(llama, ["hi"], chat=True)
    with pytest.raises(Exception, match="no prompts"):
        encode_prompts(llama, [])
    with pytest.raises(Exception, match="either prompts or input_ids"):
        generate(llama)
    with pytest.raises(Exception, match="temperature"):
        generate(llama, ["hi"], temperature=-1.0)
    with pytest.raises(Exception, match="finite"):
        generate(llama, ["hi"], temperature=float("nan"))
    sampled = generate(llama, ["The", "She"], temperature=1.0, seed=3, max_new_tokens=4)
    assert sampled.new_ids == generate(llama, ["The", "She"], temperature=1.0, seed=3, max_new_tokens=4).new_ids
    assert sampled.texts == [p + c for p, c in zip(sampled.prompts, sampled.continuations)]
