"""Paired activations: two models read at the same aligned words of the same texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interlingua.activations import at_positions
from interlingua.align import WordAlignment, align_words
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel

SOURCE, TARGET = "source", "target"


@dataclass
class WordPairs:
    """``a[hook]`` and ``b[hook]`` hold one row per aligned word, in the same order."""

    alignment: WordAlignment
    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.alignment)

    @property
    def doc(self) -> torch.Tensor:
        return self.alignment.doc()


def paired_words(
    model_a: LoadedModel, model_b: LoadedModel, texts: Sequence[str], hooks_a: Sequence[str],
    hooks_b: Sequence[str], *, shift_b: int = 0, batch_tokens: int = 4096, progress: bool = False,
) -> WordPairs:
    """Read both models at the last token of every word that ends on a token boundary in both.

    ``shift_b`` moves B's read position (−1 is the off-by-one alignment control).
    """
    limit = min(model_a.context_length, model_b.context_length)
    al = align_words(texts, {SOURCE: model_a.tokenizer, TARGET: model_b.tokenizer}, max_tokens=limit)
    if len(al) == 0:
        raise InterlinguaError(
            f"{model_a.name} and {model_b.name} have no aligned words in common on these {len(texts)} texts "
            "(no word ends on a token boundary in both tokenizations); give longer or more natural text."
        )
    pos_b = [[max(0, p + shift_b) for p in per] for per in al.token_index[TARGET]]
    a = at_positions(model_a, texts, hooks_a, al.token_index[SOURCE], batch_tokens=batch_tokens,
                     max_tokens=limit, progress=progress)
    b = at_positions(model_b, texts, hooks_b, pos_b, batch_tokens=batch_tokens, max_tokens=limit,
                     progress=progress)
    return WordPairs(alignment=al, a=a, b=b)
