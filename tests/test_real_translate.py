"""Readout transfer between the two real bundled models, label-free (slow)."""

import pytest

from interlingua.activations import Reader
from interlingua.concepts import find_concept, load_concept
from interlingua.models import load_model
from interlingua.translate import TranslateConfig, translate_concept

pytestmark = pytest.mark.slow


def test_plural_noun_transfers_label_free_from_smollm2_to_gemma3():
    a, b = load_model("smollm2-135m"), load_model("gemma3-270m")
    ds = load_concept("plural_noun")
    reader_a = Reader(a)
    ca = find_concept(a, ds, layers=range(1, a.n_layers, 6), n_boot=50, n_null=4, reader=reader_a)
    tr = translate_concept(ca, a, b, ds, TranslateConfig(layers_b=(4, 10), corpus_docs=30, n_boot=200),
                           reader_a=reader_a)
    m = tr.metrics
    assert m.label_free and m.shared_text.per_source == {"corpus": 30}
    assert m.test.fidelity >= 0.8 and m.test.fidelity_ci[0] > 0.5, m
    assert m.test.recovery is not None and m.test.recovery_ci is not None
    assert m.shared_text.coverage > 0.95
    # every control is a test; on a lexical concept between two real models all of them pass
    assert all(c.passed for c in tr.controls.values()), tr.controls
    assert tr.controls["shuffled_pairing"].p_value <= 0.01
    # a lexical concept: the translated direction is nearest to B's own plural direction among 24
    assert m.retrieval.rank == 1, m.retrieval
    assert m.neuron_search.p_value <= 0.01, m.neuron_search
    assert m.native_target_same_layers
