"""Concept discovery on the real bundled models (slow)."""

import pytest

from interlingua.concepts import Concept, find_concept, load_concept
from interlingua.models import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])
def real(request):
    return load_model(request.param)  # dtype auto: bfloat16 only where this machine runs it natively


def test_sentiment_is_found_with_nulls_at_chance(real, tmp_path):
    c = find_concept(real, load_concept("sentiment"), layers=range(0, real.n_layers, 3), n_boot=100, n_null=8)
    m = c.metrics
    assert m.auroc_test >= 0.9 and m.auroc_ood >= 0.6, m  # OOD varies by layer: 0.64–0.84
    lo, hi = m.auroc_shuffled_labels_band
    assert lo - 0.05 <= m.auroc_shuffled_labels <= hi + 0.05 and abs(m.auroc_shuffled_labels - 0.5) < 0.15
    c.save(tmp_path / "s")
    back = Concept.load(tmp_path / "s", model=real)
    texts = ["What a wonderful, moving film; I loved every minute.", "A dull, painful mess; I want my money back."]
    scores = back.score(texts)
    assert scores[0] > scores[1]


def test_order_sensitive_concept_is_read_from_context(real):
    """negation_scope has the same words in both classes; a real model still separates them."""
    c = find_concept(real, load_concept("negation_scope"), layers=range(real.n_layers // 3, real.n_layers, 3),
                     method="logistic", n_boot=50, n_null=4)
    assert c.metrics.auroc_test > 0.7, c.metrics
