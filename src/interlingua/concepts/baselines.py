"""Surface baselines for concept datasets: how far words alone separate the classes.

A concept split that a bag-of-words classifier separates says little about a model's internal
representation: a readout could succeed by reading token identity. This module holds the
reference such numbers are measured against (DESIGN.md, "Evaluation protocol": print a
bag-of-words baseline beside every AUROC): a multinomial Naive Bayes on lower-cased word
unigrams and bigrams with Laplace smoothing, fitted on a split's texts, scoring texts by
log-odds.

Pure Python counting (no new dependency). Scores are summed with :func:`math.fsum`, which is
correctly rounded, so two texts with the same multiset of features get bit-identical scores:
on order-sensitive pairs with identical bags the AUROC is exactly 0.5, not 0.5 ± rounding.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from interlingua.concepts.dataset import ConceptDataset, SplitData
from interlingua.errors import InterlinguaError
from interlingua.metrics import auroc

WORD = re.compile(r"[\w']+")

Features = Callable[[str], list[str]]


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore and apostrophe; punctuation dropped)."""
    return WORD.findall(text.lower())


def ngrams(text: str, n: int = 2) -> list[str]:
    """The word 1-grams to ``n``-grams of ``text`` (an n-gram is its words joined by one space)."""
    w = words(text)
    out = list(w)
    for k in range(2, n + 1):
        out += [" ".join(w[i:i + k]) for i in range(len(w) - k + 1)]
    return out


@dataclass(frozen=True)
class NaiveBayes:
    """A fitted multinomial Naive Bayes: per-feature log-odds (positive vs negative) and a prior.

    Features never seen in training are ignored when scoring (they carry no evidence).
    """

    log_odds: dict[str, float]
    prior: float
    ngram: int = 2
    features: Features | None = None  # replaces the n-gram features when given

    def featurise(self, text: str) -> list[str]:
        return self.features(text) if self.features is not None else ngrams(text, self.ngram)

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """Log-odds of the positive class for each text (float64, [n])."""
        return torch.tensor([self.prior + math.fsum(self.log_odds.get(f, 0.0) for f in self.featurise(t))
                             for t in texts], dtype=torch.float64)

    @classmethod
    def fit(cls, data: SplitData, *, ngram: int = 2, alpha: float = 1.0,
            features: Features | None = None) -> NaiveBayes:
        """Fit on ``data``'s texts with labels binarised at 0.5; ``alpha`` is the Laplace pseudo-count."""
        return fit_naive_bayes(data.texts, data.labels, ngram=ngram, alpha=alpha, features=features)


def fit_naive_bayes(texts: Sequence[str], labels: torch.Tensor | Sequence[float], *, ngram: int = 2,
                    alpha: float = 1.0, features: Features | None = None) -> NaiveBayes:
    """Multinomial Naive Bayes on ``texts`` (``labels`` binarised at 0.5), Laplace smoothing ``alpha``."""
    if ngram < 1 or alpha <= 0:
        raise InterlinguaError(f"Naive Bayes needs ngram >= 1 and alpha > 0, not ngram={ngram}, alpha={alpha}.")
    y = [float(v) > 0.5 for v in torch.as_tensor(labels).flatten().tolist()]
    if len(y) != len(texts):
        raise InterlinguaError(f"Naive Bayes: {len(texts)} texts but {len(y)} labels.")
    n_pos = sum(y)
    if n_pos == 0 or n_pos == len(y):
        raise InterlinguaError("Naive Bayes needs training texts of both classes; this split has only one.")
    model = NaiveBayes(log_odds={}, prior=0.0, ngram=ngram, features=features)
    counts = {True: Counter(), False: Counter()}
    for text, cls in zip(texts, y):
        counts[cls].update(model.featurise(text))
    vocab = sorted(set(counts[True]) | set(counts[False]))
    denom = {c: sum(counts[c].values()) + alpha * len(vocab) for c in (True, False)}
    log_odds = {f: math.log((counts[True][f] + alpha) / denom[True]) - math.log((counts[False][f] + alpha) / denom[False])
                for f in vocab}
    return NaiveBayes(log_odds=log_odds, prior=math.log(n_pos / (len(y) - n_pos)), ngram=ngram, features=features)


def bag_of_words_auroc(train: SplitData, other: SplitData, *, ngram: int = 2, alpha: float = 1.0,
                       features: Features | None = None) -> float:
    """AUROC on ``other`` of the Naive Bayes fitted on ``train`` (NaN if ``other`` has one class).

    Near 1.0: the split is separable by its words alone; near 0.5: words carry no class signal
    the training split taught; below 0.5: surface cues learnt on train point the wrong way.
    """
    nb = NaiveBayes.fit(train, ngram=ngram, alpha=alpha, features=features)
    return auroc(nb.score(other.texts), other.labels)


def split_baselines(dataset: ConceptDataset) -> dict[str, float | None]:
    """The bag-of-words AUROC of ``dataset``'s test and ood splits, fitted on its train split:
    ``{"bow_auroc_test": ..., "bow_auroc_ood": ...}`` (rounded to 4 places; None for a missing split)."""
    train = dataset.split("train")
    return {f"bow_auroc_{s}": (round(bag_of_words_auroc(train, dataset.split(s)), 4) if s in dataset.splits else None)
            for s in ("test", "ood")}
