"""What a researcher looks at beside the numbers: per-text scores and the texts where A and B part ways.

:func:`split_scores` keeps A's score and B's translated score of every evaluation text (the
agreement scatter); :func:`pick_examples` chooses the texts where the two agree most and
disagree most (on scores standardised per split; a display choice, not a statistic: the
audit, not this, ranks disagreements against a null); :func:`word_scores` scores such a text
at every word by one model, for side-by-side highlighting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interlingua.concepts.concept import Concept
from interlingua.translate.results import Example, SplitScores, TokenScores


def split_scores(texts: Sequence[str], labels: torch.Tensor, score_a: torch.Tensor, score_b: torch.Tensor
                 ) -> SplitScores:
    return SplitScores(texts=list(texts), labels=[int(v) for v in labels.flatten().tolist()],
                       score_a=[round(float(v), 4) for v in score_a.flatten()],
                       score_b=[round(float(v), 4) for v in score_b.flatten()])


def _z(values: Sequence[float]) -> torch.Tensor:
    t = torch.tensor(values, dtype=torch.float64)
    return (t - t.mean()) / t.std().clamp_min(1e-12) if len(t) > 1 else t * 0


def pick_examples(scores: dict[str, SplitScores], per_kind: int = 3) -> list[Example]:
    """Per split, the ``per_kind`` texts of strongest agreement (same side, both far from the middle)
    and of largest disagreement (|z_A − z_B|, scores standardised over the split)."""
    out: list[Example] = []
    for split, s in scores.items():
        if not s.texts:
            continue
        za, zb = _z(s.score_a), _z(s.score_b)
        agree = torch.where(za * zb > 0, torch.minimum(za.abs(), zb.abs()), torch.full_like(za, -1.0))
        disagree = (za - zb).abs()
        picked: set[int] = set()
        for kind, key in (("disagree", disagree), ("agree", agree)):
            order = [i for i in torch.argsort(key, descending=True, stable=True).tolist() if i not in picked]
            for i in order[:per_kind]:
                if kind == "agree" and float(agree[i]) < 0:
                    break
                picked.add(i)
                out.append(Example(split=split, index=i, kind=kind, text=s.texts[i], score_a=s.score_a[i],
                                   score_b=s.score_b[i], label=s.labels[i]))
    return out


def word_scores(concept: Concept, texts: Sequence[str]) -> list[TokenScores]:
    """``concept`` (bound to its model) scored at every word of each text: spans ``[start, end, score]``."""
    if not texts:
        return []
    per_text = concept.score(list(texts), per="word")
    return [TokenScores(model=concept.model_name, hook=concept.hook,
                        spans=[[s, e, round(float(v), 4)] for _, s, e, v in words]) for words in per_text]


def with_word_scores(examples: list[Example], concept_a: Concept, concept_b: Concept) -> list[Example]:
    """The examples with both models' per-word scores filled in (one batch per model)."""
    texts = [e.text for e in examples]
    for e, ta, tb in zip(examples, word_scores(concept_a, texts), word_scores(concept_b, texts)):
        e.tokens_a, e.tokens_b = ta, tb
    return examples
