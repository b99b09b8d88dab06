"""The concept's generative mode (steer/generative.py): sources, groups, counts, seeds, calibration, rewrites.

A planted concept makes calibration testable on a tiny random model: its direction is the input
embedding of " the" plus the (strengthened) unembedding row of " the", so steering along it makes
the model write " the" and the detector, read on the unsteered model, fires on the word "the".
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from interlingua.concepts import Concept
from interlingua.errors import InterlinguaError
from interlingua.models import LoadedModel
from interlingua.steer.generate import generate
from interlingua.steer.generative import (
    GeneratedTexts,
    calibrate_strengths,
    clean_rewrite,
    concept_texts,
    continuations,
    detector_readings,
    rewrite_goals,
    sentence_ends,
    steering_direction,
    summarize_texts,
    text_nll,
    trim_to_sentences,
)
from interlingua.steer.strength import typical_norm

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(max_new_tokens=10, batch_size=8)
CHAT = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}Answer:{% endif %}"


def _planted_concept(model: LoadedModel, weight: torch.Tensor, norm: float, name: str = "planted") -> Concept:
    d = model.d_model
    return Concept(name=name, model_name=model.name, hook=f"resid_post.{model.n_layers - 1}", method="planted",
                   weight=weight / weight.norm(), bias=0.0, mean=torch.zeros(d), std=torch.ones(d),
                   typical_norm=norm, model=model)


@pytest.fixture(scope="module")
def planted(bpe_tokenizer):
    """A tiny untied Llama whose unembedding row of " the" is 20× stronger, and three concepts on it:
    ``moves`` (steering it writes "the", which its detector reads), ``moves_quarter`` (the same
    direction with a quarter of the typical norm: it needs 4× the relative strength) and ``still``
    (a direction orthogonal to it, which steering does not make the detector see)."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(bpe_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False)
    net = LlamaForCausalLM(cfg).eval()
    t = bpe_tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        net.lm_head.weight[t] *= 20
    model = LoadedModel.from_pretrained_objects(net, bpe_tokenizer, name="tiny-llama-planted")
    emb, unemb = net.get_input_embeddings().weight[t].detach(), net.lm_head.weight[t].detach()
    w = emb / emb.norm() + unemb / unemb.norm()
    w = w / w.norm()
    tn = typical_norm(model, f"resid_post.{model.n_layers - 1}")
    other = torch.randn(model.d_model, generator=torch.Generator().manual_seed(5))
    other = other - (other @ w) * w
    return {"model": model, "moves": _planted_concept(model, w, tn), "moves_quarter": _planted_concept(model, w, tn / 4),
            "still": _planted_concept(model, other, tn)}


def _chat_model(model: LoadedModel) -> LoadedModel:
    tok = copy.deepcopy(model.tokenizer)
    tok.chat_template = CHAT
    return LoadedModel.from_pretrained_objects(model.model, tok, name=model.name + "-chat")


# ---- sentence boundaries ---------------------------------------------------------------------


def test_sentence_ends_and_trimming():
    text = "Mr. Smith came at 3.14 with J. Lee. He left! Did she? And then"
    ends = sentence_ends(text)
    assert [text[:e] for e in ends] == ["Mr. Smith came at 3.14 with J. Lee.", "Mr. Smith came at 3.14 with J. Lee. He left!",
                                        "Mr. Smith came at 3.14 with J. Lee. He left! Did she?"]
    assert trim_to_sentences(text, 0, 2) == ("Mr. Smith came at 3.14 with J. Lee. He left!", True)
    assert trim_to_sentences("no end here", 0, 2) == ("no end here", False)
    # ends inside the prompt do not count
    assert trim_to_sentences("It rained. Then the sun came. Birds sang.", 10, 1) == ("It rained. Then the sun came.", True)
    assert trim_to_sentences("She said “go.” He went.", 0, 1) == ("She said “go.”", True)
    assert trim_to_sentences("One line\nnext line", 0, 3) == ("One line", True)


def test_clean_rewrite_and_goals():
    assert clean_rewrite("\n  New sentence: \"The cats slept.\" More.\nMore text", 1) == "The cats slept."
    assert clean_rewrite("A positive review: The soup was lovely.", goal="a positive review") == "The soup was lovely."
    assert clean_rewrite("   \n\n") == ""
    # replies that talk about the task, repeat the goal, or copy the input are no rewrites
    assert clean_rewrite("The sentence is: The cats slept.") == ""
    assert clean_rewrite("The text ends with a plural noun, cats.", goal="the text ends with a plural noun") == ""
    assert clean_rewrite("The cat slept!", source="The cat slept.") == ""
    assert clean_rewrite("The cats slept.", source="The cat slept.") == "The cats slept."
    toward, away = rewrite_goals("sentiment", "a positive review (positive) vs a negative review of the same things")
    assert (toward, away) == ("a positive review", "a negative review of the same things")
    toward, away = rewrite_goals("negation_scope", "the MAIN clause is negated (positive) vs the subordinate clause "
                                                   "is negated; same words")
    assert away == "the subordinate clause is negated"
    assert rewrite_goals("formality", "formal register") == ("formal register", "the opposite of: formal register")
    assert rewrite_goals("plural_noun", None) == ("plural noun", "not plural noun")


# ---- generation: stop_when, measurements ------------------------------------------------------


def test_generate_stop_when_stops_each_row(llama):
    prompts = ["It was", "The house", "She said"]
    free = generate(llama, prompts, max_new_tokens=12)
    stopped = generate(llama, prompts, max_new_tokens=12, stop_when=lambda c: len(c) >= 5)
    for f, s in zip(free.new_ids, stopped.new_ids):
        assert s == f[:len(s)]  # greedy: the same tokens, cut where the condition first held
        assert len(llama.tokenizer.decode(s)) >= 5 or len(s) == len(f)
        assert len(llama.tokenizer.decode(s[:-1])) < 5
    assert stopped.settings["stop_when"] == "<lambda>" and "stop_when" not in free.settings


def test_detector_readings_match_concept_score(planted):
    c, texts = planted["moves"], ["the cat and the dog", "It was the best of times."]
    r = detector_readings(c, texts)
    words = c.score(texts, per="word")
    for got, want in zip(r["words"], words):
        torch.testing.assert_close(got, torch.tensor([w[3] for w in want]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r["last"], c.score(texts), rtol=1e-5, atol=1e-5)
    later = detector_readings(c, texts, from_chars=[8, 0])["words"][0]
    assert len(later) == len([w for w in words[0] if w[1] >= 8])


def test_text_nll_counts_the_continuation_only(llama):
    texts = ["The house was quiet", "The house"]
    (full, n_full), (head, n_head) = text_nll(llama, texts)
    (tail, n_tail), _ = text_nll(llama, texts, from_chars=[len("The house"), 0])
    # the continuation's tokens are the full text's minus the prompt's (no BOS: the first token is never predicted)
    assert n_tail == n_full - n_head
    assert tail == pytest.approx(full - head, rel=1e-4)


# ---- concept_texts -----------------------------------------------------------------------------


def test_same_seed_same_texts_and_a_new_seed_new_ones(planted):
    m, c = planted["model"], planted["moves"]
    a = concept_texts(m, c, 9, strengths=0.5, seed=3, **FAST)
    b = concept_texts(m, c, 9, strengths=0.5, seed=3, **FAST)
    other = concept_texts(m, c, 9, strengths=0.5, seed=4, **FAST)
    assert a == b and a.texts != other.texts
    assert [g.prompt for g in a] != [g.prompt for g in other]  # the prompts are drawn with the seed too


@pytest.mark.parametrize("n", [1, 2, 5, 9, 10])
def test_n_is_respected_and_split_over_the_sources(planted, n):
    m, c = planted["model"], planted["moves"]
    got = concept_texts(m, c, n, strengths={"toward": 0.5, "away": 0.5}, **FAST)
    assert len(got) == n and isinstance(got, GeneratedTexts)
    counts = {s: len(got.by_source(s)) for s in ("sampled", "steered_toward", "steered_away")}
    assert sum(counts.values()) == n
    # rewrite is skipped (no chat template), so n is split over sampled and steered; steered over its two sides
    assert counts["sampled"] == (n + 1) // 2
    assert abs(counts["steered_toward"] - counts["steered_away"]) <= 1


def test_groups_prompts_sources_and_strengths(planted):
    m, c = planted["model"], planted["moves"]
    got = concept_texts(m, c, 12, strengths={"toward": 0.5, "away": 1.0}, **FAST)
    for g in got:
        assert g.text.startswith(g.prompt) and g.prompt
        assert g.strength == {"sampled": None, "steered_toward": 0.5, "steered_away": -1.0}[g.source]
    for source in ("sampled", "steered_toward", "steered_away"):
        texts = got.by_source(source)
        assert [g.group for g in texts] == list(range(len(texts)))  # text i continues prompt i
    by_group = {}
    for g in got:
        by_group.setdefault(g.group, set()).add(g.prompt)
    assert all(len(p) == 1 for p in by_group.values())  # one group, one prompt
    # coupled sampling: the sampled text of a prompt is what the steered ones are compared with, and
    # steering toward " the" makes A write it (its detector reads it) more often than without
    the = lambda src: sum(g.text[len(g.prompt):].count(" the") for g in got.by_source(src))  # noqa: E731
    assert the("steered_toward") > the("sampled")
    assert got.strengths == {"toward": 0.5, "away": 1.0} and got.settings["counts"]["sampled"] == 6


def test_rewrite_skipped_with_a_reason_without_a_chat_template(planted):
    m, c = planted["model"], planted["moves"]
    got = concept_texts(m, c, 6, sources=("sampled", "rewrite"), strengths=0.5, **FAST)
    assert set(got.skipped) == {"rewrite_toward", "rewrite_away"}
    assert all("chat template" in why for why in got.skipped.values())
    assert len(got) == 6 and {g.source for g in got} == {"sampled"}
    with pytest.raises(InterlinguaError, match="chat template"):
        concept_texts(m, c, 4, sources=("rewrite",), **FAST)


def test_rewrites_with_a_chat_template_share_a_group_per_sentence(planted):
    chat = _chat_model(planted["model"])
    c = _planted_concept(chat, planted["moves"].weight, planted["moves"].typical_norm)
    got = concept_texts(chat, c, 8, sources=("sampled", "rewrite"), description="the word 'the' (positive) vs "
                        "no 'the' (negative)", **FAST)
    assert not got.skipped and len(got) == 8
    toward, away = got.by_source("rewrite_toward"), got.by_source("rewrite_away")
    assert len(toward) + len(away) + len(got.by_source("sampled")) == 8
    assert toward and away and all(g.strength is None and g.text for g in toward + away)
    prompt_groups = {g.group for g in got.by_source("sampled")}
    assert not prompt_groups & {g.group for g in toward + away}  # rewrite groups never collide with prompt groups
    for g in toward + away:  # the prompt is the corpus sentence; the same sentence has the same group
        assert len(g.prompt.split()) >= 6 and g.prompt[-1] in ".!?"
        assert {h.prompt for h in toward + away if h.group == g.group} == {g.prompt}
    assert got.settings["description"].startswith("the word")


def test_a_direction_without_strength_is_skipped_with_the_reason(planted):
    m, c = planted["model"], planted["moves"]
    got = concept_texts(m, c, 6, sources=("steered",), strengths={"toward": 0.5, "away": None}, **FAST)
    assert "steered_away" in got.skipped and len(got) == 6 and {g.source for g in got} == {"steered_toward"}
    with pytest.raises(InterlinguaError, match="unknown source"):
        concept_texts(m, c, 3, sources=("steered_up",), **FAST)
    with pytest.raises(InterlinguaError, match="positive"):
        concept_texts(m, c, 3, strengths=-1.0, **FAST)


# ---- calibration -------------------------------------------------------------------------------


CAL = dict(n_prompts=8, candidates=(0.25, 0.5, 1, 2, 4, 8), direction="readout", read="word", **FAST)


def test_calibration_picks_a_larger_strength_when_the_detector_needs_it(planted):
    m = planted["model"]
    easy = calibrate_strengths(m, planted["moves"], **CAL)
    hard = calibrate_strengths(m, planted["moves_quarter"], **CAL)
    assert easy["toward"] is not None and hard["toward"] is not None
    assert hard["toward"] > easy["toward"]
    assert "shift >= 1" in easy["reasons"]["toward"] and "shift >= 1" in hard["reasons"]["toward"]
    chosen = [r for r in easy["candidates"] if r["direction"] == "toward" and r["strength"] == easy["toward"]][0]
    assert chosen["shift"] >= 1.0 and chosen["coherent"]
    # a quarter of the typical norm: relative strength 4s is the same vector as s, and measures the same
    same = [r for r in hard["candidates"] if r["direction"] == "toward" and r["strength"] == 4 * easy["toward"]]
    assert same and same[0]["shift"] == chosen["shift"]
    # the ladder stops once the target is reached
    assert max(r["strength"] for r in easy["candidates"] if r["direction"] == "toward") == easy["toward"]


def test_calibration_refuses_a_direction_that_does_not_move_the_detector(planted):
    cal = calibrate_strengths(planted["model"], planted["still"], **CAL)
    assert cal["toward"] is None
    assert "no coherent candidate moved the detector" in cal["reasons"]["toward"]
    assert len([r for r in cal["candidates"] if r["direction"] == "toward"]) == len(CAL["candidates"])
    assert cal["baseline"]["score_std"] > 0 and cal["settings"]["direction"] == "readout"
    got = concept_texts(planted["model"], planted["still"], 4, sources=("sampled", "steered"), strengths=cal, **FAST)
    assert "steered_toward" in got.skipped and "moved the detector" in got.skipped["steered_toward"]
    assert len(got) == 4 and not got.by_source("steered_toward")


def test_calibration_marks_degenerate_text_incoherent(planted):
    cal = calibrate_strengths(planted["model"], planted["moves"], **{**CAL, "candidates": (64.0,)}, full_curve=True)
    toward = [r for r in cal["candidates"] if r["direction"] == "toward"][0]
    assert not toward["coherent"] and toward["distinct2"] < cal["baseline"]["distinct2"]
    assert cal["toward"] is None and "coherent" in cal["reasons"]["toward"]


def test_auto_strengths_record_the_calibration(planted):
    m, c = planted["model"], planted["moves"]
    got = concept_texts(m, c, 4, sources=("steered",), strengths="auto",
                        calibration={k: v for k, v in CAL.items() if k not in FAST} | FAST, **FAST)
    assert got.calibration is not None and got.strengths["toward"] == got.calibration["toward"]
    assert {g.strength for g in got.by_source("steered_toward")} == {got.calibration["toward"]}
    json_blob = got.to_json()
    assert json_blob["texts"][0]["source"] == "steered_toward" and "candidates" in json_blob["calibration"]


def test_pattern_direction_is_the_covariance_times_the_readout(planted):
    m, c = planted["model"], planted["moves"]
    texts = ["the cat sat on the mat and the dog", "It was the best of times, it was the worst of times."]
    got = steering_direction(m, c, "pattern", texts=texts)
    from interlingua.activations import at_positions

    lengths = [len(x) for x in m.tokenizer(texts)["input_ids"]]
    x = at_positions(m, texts, c.hook, [list(range(1, n)) for n in lengths])[c.hook].float()
    want = torch.cov(x.T) @ c.weight
    torch.testing.assert_close(got, want / want.norm(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(steering_direction(m, c, "readout"), c.direction)
    with pytest.raises(InterlinguaError, match="direction"):
        steering_direction(m, c, "sideways")


def test_summarize_texts_reads_words_last_tokens_and_perplexity(planted):
    c = planted["moves"]
    s = summarize_texts(c, ["the cat and the dog", "It was a cold day."])
    assert s["n_texts"] == 2 and s["n_words"] >= 8 and s["ppl"] > 1 and 0 < s["distinct2"] <= 1
    assert 0 <= s["word_frac_pos"] <= 1 and s["word_std"] > 0


def test_continuations_unsteered_match_plain_generation(planted):
    m, c = planted["model"], planted["moves"]
    a = continuations(m, c, ["It was", "The house"], 0.0, max_new_tokens=8, max_sentences=5, temperature=1.0)
    b = continuations(m, c, ["It was", "The house"], 0.0, max_new_tokens=8, max_sentences=5, temperature=1.0)
    steered = continuations(m, c, ["It was", "The house"], 2.0, max_new_tokens=8, max_sentences=5)
    assert a == b and a != steered and all(t.startswith(p) for t, p in zip(a, ["It was", "The house"]))


def test_default_ladder_is_in_multiples_of_the_natural_spread(planted):
    from interlingua.steer.generative import DEFAULT_LADDER, corpus_activations, natural_spread

    m, c = planted["model"], planted["moves"]
    x = corpus_activations(m, c.hook)
    spread = float((x @ c.direction).std()) / c.typical_norm
    assert natural_spread(m, c, c.direction) == pytest.approx(spread, rel=1e-6)
    cal = calibrate_strengths(m, c, n_prompts=4, **FAST)
    assert cal["settings"]["candidates"] == [float(f"{k * spread:.3g}") for k in DEFAULT_LADDER]
    assert cal["settings"]["spread"] == pytest.approx(spread, rel=1e-4)
    for r in cal["candidates"]:
        assert r["strength_in_spread"] == pytest.approx(r["strength"] / spread, rel=1e-2)


def test_an_incoherent_weakest_rung_is_halved(planted):
    cal = calibrate_strengths(planted["model"], planted["moves"], **{**CAL, "candidates": (64.0,)}, descend=2)
    toward = [r["strength"] for r in cal["candidates"] if r["direction"] == "toward"]
    assert toward[-1] == 64.0 and toward[:-1] and all(a < b for a, b in zip(toward, toward[1:]))
    assert toward[0] >= 16.0  # at most two halvings


def test_rewrites_that_fall_short_are_made_up_by_the_other_sources(planted, monkeypatch):
    import interlingua.steer.generative as gen

    chat = _chat_model(planted["model"])
    c = _planted_concept(chat, planted["moves"].weight, planted["moves"].typical_norm)
    calls = []

    def mostly_empty(model, sentences, goal, **kw):  # two replies in three are no rewrite
        calls.append(len(sentences))
        return ["" if i % 3 else f"Rewritten {goal} {s}" for i, s in enumerate(sentences)]

    monkeypatch.setattr(gen, "rewrites", mostly_empty)
    # 12 texts: 6 sampled, 3 + 3 rewrites asked; one attempt each gives a pool of 3 + 2 sentences, 2 usable
    got = concept_texts(chat, c, 12, sources=("sampled", "rewrite"), rewrite_attempts=1, **FAST)
    assert len(got) == 12 and calls == [5, 5]
    toward, away = got.by_source("rewrite_toward"), got.by_source("rewrite_away")
    assert len(toward) == len(away) == 2 and len(got.by_source("sampled")) == 8
    assert set(got.skipped) == {"rewrite_toward", "rewrite_away"}
    assert got.skipped["rewrite_toward"].startswith("made 2 of 3") and "no rewrite" in got.skipped["rewrite_toward"]
    assert got.settings["counts"] == {"sampled": 8, "rewrite_toward": 2, "rewrite_away": 2}
    assert [g.prompt for g in toward] == [g.prompt for g in away]  # sentences 0 and 3 of the pool, on both sides
    assert toward[0].group == away[0].group != toward[1].group

    monkeypatch.setattr(gen, "rewrites", lambda model, sentences, goal, **kw: [""] * len(sentences))
    with pytest.raises(InterlinguaError, match="add another source"):
        concept_texts(chat, c, 4, sources=("rewrite",), **FAST)
