"""The bag-of-words (Naive Bayes) baseline: planted data it must get right, and its exact ties."""

from __future__ import annotations

import math

import pytest
import torch

from interlingua.concepts.baselines import NaiveBayes, bag_of_words_auroc, fit_naive_bayes, ngrams, words
from interlingua.concepts.dataset import from_dict
from interlingua.errors import InterlinguaError


def split(items: list[dict], name: str = "train"):
    other = "test" if name == "train" else "train"
    filler = [{"positive": "filler yes", "negative": "filler no"}]
    return from_dict({"name": "p", name: items, other: filler}).split(name)


def test_tokens_and_ngrams():
    assert words("The Cat's mat, isn't it?") == ["the", "cat's", "mat", "isn't", "it"]
    assert ngrams("A b c", 2) == ["a", "b", "c", "a b", "b c"]
    assert ngrams("A b c", 1) == ["a", "b", "c"]


def test_separable_vocabulary_gives_one_and_unseen_words_give_chance():
    train = split([{"positive": f"item {i} is lovely", "negative": f"item {i} is awful"} for i in range(20)])
    test = split([{"positive": f"a thing {i} lovely", "negative": f"a thing {i} awful"} for i in range(10)], "test")
    assert bag_of_words_auroc(train, test) == 1.0
    unseen = split([{"positive": f"item {i} is superb", "negative": f"item {i} is dreadful"} for i in range(10)],
                   "test")
    assert bag_of_words_auroc(train, unseen) == 0.5  # only shared (tied) features are known


def test_anti_correlated_cues_give_below_chance():
    train = split([{"positive": f"sport {i} red", "negative": f"cook {i} blue"} for i in range(20)])
    flipped = split([{"positive": f"x {i} blue", "negative": f"x {i} red"} for i in range(10)], "test")
    assert bag_of_words_auroc(train, flipped) == 0.0


def test_identical_bags_give_exactly_one_half():
    # order-sensitive pairs: the same words in another order; unigrams are identical bags
    train = split([{"positive": f"the dog {i} chased the cat", "negative": f"the cat {i} chased the dog"}
                   for i in range(12)] + [{"positive": "the dog barked loudly", "negative": "the cat sat"}])
    test = split([{"positive": f"the dog {i} saw the big cat", "negative": f"the cat {i} saw the big dog"}
                  for i in range(30)], "test")
    assert bag_of_words_auroc(train, test, ngram=1) == 0.5
    # bigrams see the order: "dog chased" vs "cat chased" ...
    assert bag_of_words_auroc(train, train) > 0.5
    # identical bags of unigrams AND bigrams ("a b a c a" vs "a c a b a") tie with bigrams too
    cyc = split([{"positive": f"{i} a b a c a", "negative": f"{i} a c a b a"} for i in range(10)], "test")
    nb = NaiveBayes.fit(train)
    s = nb.score(cyc.texts)
    assert torch.equal(s[cyc.pairs[:, 0]], s[cyc.pairs[:, 1]])


def test_exact_ties_do_not_depend_on_feature_order():
    nb = fit_naive_bayes(["alpha beta gamma delta", "beta zeta eta", "eta theta alpha"], [1, 0, 0], ngram=1)
    a, b = nb.score(["alpha beta gamma delta theta", "theta delta gamma beta alpha"]).tolist()
    assert a == b


def test_log_odds_are_laplace_smoothed_counts():
    nb = fit_naive_bayes(["x x y", "y"], torch.tensor([1.0, 0.3]), ngram=1)  # 0.3 -> negative
    # vocab {x, y}; positive counts x=2, y=1 (total 3); negative y=1 (total 1)
    assert nb.log_odds["x"] == pytest.approx(math.log(3 / 5) - math.log(1 / 3))
    assert nb.log_odds["y"] == pytest.approx(math.log(2 / 5) - math.log(2 / 3))
    assert nb.prior == 0.0
    assert nb.score(["x"]).item() == pytest.approx(nb.log_odds["x"])
    assert nb.score(["never seen"]).item() == 0.0


def test_custom_features_and_errors():
    nb = fit_naive_bayes(["a cat", "a dog"], [1, 0], features=lambda t: ["last:" + words(t)[-1]])
    assert set(nb.log_odds) == {"last:cat", "last:dog"}
    with pytest.raises(InterlinguaError, match="both classes"):
        fit_naive_bayes(["a", "b"], [1, 1])
    with pytest.raises(InterlinguaError, match="alpha"):
        fit_naive_bayes(["a", "b"], [1, 0], alpha=0)
