"""Readout transfer between the two real bundled models (slow)."""

import pytest

from interlingua.concepts import find_concept, load_concept
from interlingua.models import load_model
from interlingua.translate import translate_concept

pytestmark = pytest.mark.slow


def test_plural_noun_transfers_from_smollm2_to_gemma3():
    a, b = load_model("smollm2-135m"), load_model("gemma3-270m")  # dtype auto
    ds = load_concept("plural_noun")
    ca = find_concept(a, ds, layers=range(1, a.n_layers, 6), n_boot=50, n_null=4)
    tr = translate_concept(ca, a, b, ds, layers_b=[4, 10], n_corpus_docs=20,
                           controls=("shuffled_pairing", "synthetic_pair"))
    m = tr.metrics
    assert m["recovery_test"] is not None and m["recovery_test"] >= 0.6, m
    assert m["coverage"] > 0.95
    assert all(c["passed"] for c in tr.controls.values()), tr.controls
    # a lexical concept: the translated direction is nearest to B's own plural direction among 24
    assert m["retrieval"]["rank"] == 1, m["retrieval"]
    assert m["neuron_search"]["above_null"], m["neuron_search"]
    # the label-free global maps carry it too
    assert m["methods"]["ridge_map"]["recovery_test"] >= 0.6, m["methods"]
