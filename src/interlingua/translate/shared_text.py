"""The shared text a translation is fitted on: documents both models read, each with its source.

By default the shared text carries no labelled text at all: openings of bundled-corpus
documents and text model A generates (unsteered, steered toward / away from the concept,
rewrites). The concept's own train texts join only on request (``concept_texts=True`` in
:func:`build_shared_text`), and then A scores them out-of-fold (see
:func:`interlingua.translate.translate.source_scores`), never in sample.

Every document carries a *group*: documents made from one prompt or one contrastive pair
(or one template) share it, so a held-out split or a permutation null moves them together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interlingua.concepts.dataset import ConceptDataset
from interlingua.data.corpus import load_corpus
from interlingua.errors import InterlinguaError

CONCEPT_TRAIN = "concept_train"
CORPUS = "corpus"


@dataclass(frozen=True)
class SharedText:
    """Documents with one source name and one group id each (parallel lists)."""

    texts: list[str]
    sources: list[str]
    groups: list[int]

    def __post_init__(self):
        if not (len(self.texts) == len(self.sources) == len(self.groups)):
            raise ValueError("texts, sources and groups must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_free(self) -> bool:
        """True when no labelled concept text is part of it."""
        return CONCEPT_TRAIN not in self.sources

    def counts(self) -> dict[str, int]:
        """Documents per source, in first-seen order."""
        return dict(Counter(self.sources))

    def describe(self) -> dict:
        """The ``shared_text`` record of a translation's JSON."""
        return {"documents": len(self), "per_source": self.counts(), "label_free": self.label_free}

    def index(self, source: str) -> torch.Tensor:
        """Indices of the documents of one source."""
        return torch.tensor([i for i, s in enumerate(self.sources) if s == source], dtype=torch.long)


def corpus_documents(n: int, max_chars: int = 600) -> list[str]:
    """Openings of the first ``n`` bundled-corpus train documents (cut at a word boundary)."""
    if n < 0:
        raise InterlinguaError(f"the number of corpus documents must be >= 0, not {n}.")
    out = []
    for d in load_corpus("train", max_docs=n) if n else []:
        cut = d[:max_chars]
        if len(d) > max_chars and " " in cut:
            cut = cut[: cut.rindex(" ")]
        out.append(cut)
    return out


def build_shared_text(
    *,
    corpus_docs: int,
    generated: Sequence = (),
    extra_texts: Sequence[str] = (),
    dataset: ConceptDataset | None = None,
    concept_texts: bool = False,
    max_chars: int = 600,
) -> SharedText:
    """Corpus openings, then A's generations, then user texts, then (on request) the concept's train texts.

    ``generated`` holds :class:`interlingua.steer.generative.GeneratedText` items (anything with
    ``text``, ``source`` and ``group``); ``extra_texts`` are plain strings (source ``"extra"``).
    """
    texts: list[str] = []
    sources: list[str] = []
    groups: list[int] = []

    def add(items: Sequence[tuple[str, str, int]]) -> None:
        base = max(groups) + 1 if groups else 0
        for text, source, group in items:
            texts.append(text)
            sources.append(source)
            groups.append(base + group)

    add([(t, CORPUS, i) for i, t in enumerate(corpus_documents(corpus_docs, max_chars))])
    if generated:
        ids = {g: i for i, g in enumerate(dict.fromkeys(int(x.group) for x in generated))}
        add([(x.text, x.source, ids[int(x.group)]) for x in generated])
    add([(t, "extra", i) for i, t in enumerate(extra_texts)])
    if concept_texts:
        if dataset is None:
            raise InterlinguaError("concept_texts=True needs the concept's dataset.")
        train = dataset.split("train")
        tmpl = getattr(train, "templates", None)
        by = train.groups if tmpl is None else tmpl
        add([(t, CONCEPT_TRAIN, int(g)) for t, g in zip(train.texts, by.tolist())])
    if not texts:
        raise InterlinguaError("the shared text is empty: give corpus documents, generated texts or extra texts.")
    return SharedText(texts=texts, sources=sources, groups=groups)
