"""Steering SmolLM2-135M toward positive sentiment, judged against a random vector (slow: a real model).

Measured on a shared 2-core CPU (one thread): ~50–70 s.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from interlingua.concepts import find_concept, load_concept
from interlingua.models import load_model
from interlingua.steer import add, generate
from interlingua.steer.evaluate import (
    DEFAULT_PROMPTS,
    Evaluator,
    NeutralText,
    Settings,
    concept_token_sets,
    layer_directions,
    make_judge,
    sweep,
)
from interlingua.steer.gguf import ControlVector

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_sentiment_steering_on_smollm2_beats_a_random_vector(tmp_path):
    model = load_model("smollm2-135m")
    full = load_concept("sentiment")
    ds = dataclasses.replace(full, items={s: v[:24] for s, v in full.items.items()})
    detector = find_concept(model, ds, hook="resid_post.18", n_boot=10, n_null=2)
    judge = make_judge("smollm2", detector, ds)
    assert detector.metrics["auroc_test"] > 0.9 and judge.gap > 0
    direction = layer_directions(model, ds, [18])  # diff of means: the steering vector
    ev = Evaluator(model, DEFAULT_PROMPTS[:4], [judge], token_sets=concept_token_sets(model, ds),
                   settings=Settings(max_new_tokens=12), neutral=NeutralText.build(model, n_docs=1, max_tokens=16))
    res = sweep(ev, direction, [0.5])
    print("\n" + res.table())
    unsteered, steer, rnd = res.rows
    assert (steer["condition"], rnd["condition"]) == ("steer", "random")
    e_steer, e_rand = steer["effect"]["smollm2"], rnd["effect"]["smollm2"]
    # toward the concept by a good part of the negative-to-positive gap; the norm-matched random vector much less
    assert e_steer > 0.3 and abs(e_rand) < 0.5 * e_steer, res.table()
    assert steer["token_logodds_effect"] > 0, res.table()  # concept words become likelier next tokens
    assert steer["kl"] > 0 and rnd["kl"] > 0 and steer["perplexity"] < 50, res.table()

    # the same steering from a llama.cpp control vector file gives the same tokens
    d = direction[0]
    iv = add(d.direction, 0.5, hook=d.hook, typical_norm=d.typical_norm)
    cv = ControlVector.load(ControlVector.from_interventions(model, iv).save(tmp_path / "sentiment.gguf"))
    a = generate(model, DEFAULT_PROMPTS[:1], interventions=iv, max_new_tokens=6)
    b = generate(model, DEFAULT_PROMPTS[:1], interventions=cv.interventions(model), max_new_tokens=6)
    assert a.new_ids == b.new_ids
