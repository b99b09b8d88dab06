"""Paired activations: two models read at the same aligned words of the same texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from interlingua.activations import Reader
from interlingua.align import WordAlignment, align_words
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel

SOURCE, TARGET = "source", "target"


@dataclass
class WordPairs:
    """``a[hook]`` and ``b[hook]`` hold one row per aligned word, in the same order.

    ``b_shifted[hook]`` (when read) holds B one token before each word's last token: the
    off-by-one alignment control, read in the same forward pass as ``b``. ``b_head[hook]``
    holds extra hooks of B read for the first ``n_head`` words only (the unit search's inputs),
    in the same pass as well.
    """

    alignment: WordAlignment
    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    b_shifted: dict[str, torch.Tensor] = field(default_factory=dict)
    b_head: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.alignment)

    @property
    def doc(self) -> torch.Tensor:
        return self.alignment.doc()

    @property
    def n_head(self) -> int:
        return next(iter(self.b_head.values())).shape[0] if self.b_head else 0


def align_pair(model_a: LoadedModel, model_b: LoadedModel, texts: Sequence[str]) -> WordAlignment:
    """Words of ``texts`` that end on a token boundary in both models' tokenizers."""
    limit = min(model_a.context_length, model_b.context_length)
    al = align_words(texts, {SOURCE: model_a.tokenizer, TARGET: model_b.tokenizer}, max_tokens=limit)
    if len(al) == 0:
        raise InterlinguaError(
            f"{model_a.name} and {model_b.name} have no aligned words in common on these {len(texts)} texts "
            "(no word ends on a token boundary in both tokenizations); give longer or more natural text."
        )
    return al


def read_target(reader: Reader, alignment: WordAlignment, hooks: Sequence[str], *, shifted: bool = False,
                head_hooks: Sequence[str] = (), head_words: int = 0
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """B at every aligned word (with ``shifted``, one token earlier too; ``head_hooks`` for the
    texts of the first ``head_words`` words), each text read once.

    Returns ``(b, b_shifted, b_head)``.
    """
    pos = alignment.token_index[TARGET]
    texts = alignment.texts
    n_head = 0
    if head_hooks and head_words > 0:
        sizes = torch.tensor([len(p) for p in pos])
        n_head = max(1, int((sizes.cumsum(0) <= head_words).sum()))
    read_pos = [list(p) + [max(0, q - 1) for q in p] for p in pos] if shifted else [list(p) for p in pos]
    head = {}
    if n_head:  # read first, with every hook, so that the call below finds these texts in the memo
        got = reader.read(texts[:n_head], list(hooks) + list(head_hooks), read_pos[:n_head])
        head = {h: _first_half(got[h], pos[:n_head]) if shifted else got[h] for h in head_hooks}
    got = reader.read(texts, hooks, read_pos)
    if not shifted:
        return got, {}, head
    here = {h: _first_half(rows, pos) for h, rows in got.items()}
    before = {h: _first_half(rows, pos, second=True) for h, rows in got.items()}
    return here, before, head


def _first_half(rows: torch.Tensor, pos: Sequence[Sequence[int]], second: bool = False) -> torch.Tensor:
    """Rows read at ``p + shifted(p)`` per text: keep the first (or second) half of every text's block."""
    parts = torch.split(rows, [s for p in pos for s in (len(p), len(p))])
    return torch.cat(parts[1::2] if second else parts[0::2])


def paired_words(
    model_a: LoadedModel, model_b: LoadedModel, texts: Sequence[str], hooks_a: Sequence[str],
    hooks_b: Sequence[str], *, shifted_b: bool = False, head_hooks_b: Sequence[str] = (), head_words: int = 0,
    reader_a: Reader | None = None, reader_b: Reader | None = None, progress: bool = False,
) -> WordPairs:
    """Read both models at the last token of every word that ends on a token boundary in both.

    Readers (one per model) may be passed so that later steps reuse what was read here.
    """
    limit = min(model_a.context_length, model_b.context_length)
    reader_a = reader_a or Reader(model_a, max_tokens=limit, progress=progress)
    reader_b = reader_b or Reader(model_b, max_tokens=limit, progress=progress)
    al = align_pair(model_a, model_b, texts)
    a = reader_a.read(al.texts, hooks_a, al.token_index[SOURCE])
    b, before, head = read_target(reader_b, al, hooks_b, shifted=shifted_b, head_hooks=head_hooks_b,
                                  head_words=head_words)
    return WordPairs(alignment=al, a=a, b=b, b_shifted=before, b_head=head)
