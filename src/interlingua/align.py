"""Align stage: match positions of models with different tokenizers through the text itself.

Two models never share a tokenizer, but they read the same characters. A *word* (see
:func:`word_pattern`) is a unit both can be compared on: for every tokenizer we take the
position of the **last token of the word**, the one whose character span ends exactly where
the word ends. At that position a causal model has read the whole word and nothing after it.

A word is kept only if its end falls on a token boundary in *every* tokenization: there is a
token ``i`` with ``char_end[i] == word_end`` such that no token up to ``i`` reaches past the
word end and no token after ``i`` starts before it. This drops the word when

* a token runs across its end (a SentencePiece piece like ``"s▁"``, or a merged ``"g."``);
* a multi-byte character is split into several byte tokens and a token spans its boundary.

Byte-level BPE and byte fallback split one character (emoji, CJK, accented letters) into
several tokens that all report the same character span; the word's last token is the *last*
of them. Special tokens (BOS) have an empty span ``(0, 0)`` and never match. Offsets that
include a leading space (``"Ġworld"`` → ``(5, 11)`` in ``"Hello world"``) are fine, since only
the end of a span matters.

* :func:`word_spans` splits a text into words; :func:`last_token_of_words` is the pure
  boundary test on one tokenization's offsets.
* :func:`align_words` tokenizes texts with several tokenizers and returns a
  :class:`WordAlignment`, which reports its coverage (kept words / all words) and gathers
  the aligned rows out of :class:`~interlingua.activations.Activations`.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from interlingua.errors import InterlinguaError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from interlingua.activations import Activations

Span = tuple[int, int]

_FAR = np.iinfo(np.int64).max


@functools.cache
def word_pattern() -> re.Pattern[str]:
    """The regular expression that splits text into words (built once, on first use).

    * A **word** is a run of letters, digits and combining marks, optionally joined by
      internal apostrophes: "don't", "Darcy’s", "café", "Ελληνικά", "日本語", "हिन्दी".
      Combining marks (Unicode categories Mn, Mc, Me) count as letters: Python's ``\\w``
      alone would cut Devanagari, Thai or decomposed accents ("cafe\\u0301") apart.
    * Every other run of non-space characters is a unit of its own: punctuation, symbols,
      emoji (with their joiners and variation selectors) and the underscore. So "3.50 €."
      is "3", ".", "50", "€."; "😀👍" and "!”" are one unit each; "_her_," (Gutenberg
      italics) is "_", "her", "_,", which is how both bundled tokenizers cut it.
    """
    marks, start = [], None
    for cp in range(sys.maxunicode + 2):
        is_mark = cp <= sys.maxunicode and unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            marks.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start = None
    letter = rf"(?:[^\W_]|[{''.join(marks)}])"
    return re.compile(rf"{letter}+(?:['’]{letter}+)*|(?:[^\w\s]|_)+")


def word_spans(text: str) -> list[Span]:
    """Character spans ``(start, end)`` of the words of ``text`` (see :func:`word_pattern`)."""
    return [m.span() for m in word_pattern().finditer(text)]


def _boundaries(offsets: Sequence[Span]) -> tuple[np.ndarray, np.ndarray]:
    """Token boundaries of one tokenization: ``(ends, index)``, ``ends`` strictly increasing.

    Token ``i`` closes a boundary at ``e = char_end[i]`` when every non-empty token up to ``i``
    ends at or before ``e`` and every non-empty token after ``i`` starts at or after ``e``.
    Empty spans (special tokens) are ignored. Two boundaries cannot share an end (a later
    token ending at ``e`` would have to start at ``e``, i.e. be empty), so ``index[k]`` is
    the last token ending at ``ends[k]``.
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(off) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    start, end = off[:, 0], off[:, 1]
    real = end > start
    reach = np.maximum.accumulate(np.where(real, end, -1))           # max end over tokens ≤ i
    later = np.minimum.accumulate(np.where(real, start, _FAR)[::-1])[::-1]  # min start over ≥ i
    next_start = np.append(later[1:], _FAR)                            # min start over > i
    cut = real & (reach == end) & (next_start >= end)
    index = np.flatnonzero(cut)
    return end[index], index


def last_token_of_words(offsets: Sequence[Span], spans: Sequence[Span]) -> list[int | None]:
    """For each word span, the index of its last token in ``offsets``, or ``None``.

    ``offsets`` are one text's token character spans as a fast tokenizer reports them with
    ``return_offsets_mapping=True`` (special tokens as empty spans). A word gets an index
    only if its end is a token boundary (see :func:`_boundaries`); the index is then the
    last token whose span ends at the word's end.
    """
    if len(spans) == 0:
        return []
    ends, index = _boundaries(offsets)
    word_end = np.fromiter((e for _, e in spans), dtype=np.int64, count=len(spans))
    k = np.searchsorted(ends, word_end)
    found = k < len(ends)
    found[found] = ends[k[found]] == word_end[found]
    return [int(index[j]) if ok else None for j, ok in zip(k.tolist(), found.tolist())]


@dataclass
class WordAlignment:
    """Words of ``texts`` that end on a token boundary in every tokenizer, with their positions.

    ``words[t]`` are the kept word spans of text ``t``, in text order; ``token_index[name][t][w]``
    is the position (in the tokenizer's input including special tokens such as BOS) of the last
    token of word ``words[t][w]`` for tokenizer ``name``. ``n_words_per_text`` counts all words
    before filtering; ``on_boundary[name]`` counts the words ending on a boundary in that
    tokenizer alone (within ``max_tokens``), which says which tokenizer loses the words.
    """

    texts: list[str]
    words: list[list[Span]]
    token_index: dict[str, list[list[int]]]
    n_words_per_text: list[int]
    on_boundary: dict[str, int] = field(default_factory=dict)
    max_tokens: int | None = None

    def __len__(self) -> int:
        return sum(len(w) for w in self.words)

    @property
    def names(self) -> list[str]:
        return list(self.token_index)

    @property
    def n_words(self) -> int:
        """All words of all texts, before filtering."""
        return sum(self.n_words_per_text)

    @property
    def coverage(self) -> float:
        """Kept words / all words over all texts (NaN if the texts have no words)."""
        return len(self) / self.n_words if self.n_words else math.nan

    def coverage_per_text(self) -> list[float]:
        """Kept words / all words for each text (NaN for a text without words)."""
        return [len(w) / n if n else math.nan for w, n in zip(self.words, self.n_words_per_text)]

    def doc(self) -> torch.Tensor:
        """Text index of every kept word, in alignment order (texts in order, words in order)."""
        return torch.repeat_interleave(torch.arange(len(self.words)),
                                       torch.tensor([len(w) for w in self.words], dtype=torch.long))

    def flat(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(doc, pos)`` LongTensors of the kept words' last tokens for tokenizer ``name``."""
        index = self._index(name)
        pos = torch.tensor([p for per_text in index for p in per_text], dtype=torch.long)
        return self.doc(), pos

    def word_strings(self) -> list[str]:
        """The kept words as strings, in alignment order."""
        return [text[s:e] for text, spans in zip(self.texts, self.words) for s, e in spans]

    def gather(self, acts: Activations, name: str, hook: str) -> torch.Tensor:
        """Rows of ``acts[hook]`` at the kept words' last tokens of ``name``: ``[len(self), d]``.

        ``acts`` must have been extracted from the same texts (in the same order) by the model
        whose tokenizer is ``name``. Rows are matched on (document, position); each matched
        row's character end is checked against the word end, so activations of another
        tokenizer are caught. A needed position missing from ``acts`` (dropped by
        ``skip_first`` or a shorter ``max_tokens``) is an error, not silently skipped.
        """
        vectors = acts[hook]
        if acts.texts is not None and (len(acts.texts) != len(self.texts) or acts.texts != self.texts):
            raise InterlinguaError(
                f"the activations were extracted from other texts ({len(acts.texts)} documents) than "
                f"this alignment was built on ({len(self.texts)}); align and extract the same texts in "
                "the same order."
            )
        doc, pos = self.flat(name)
        if len(doc) == 0:
            return vectors.new_empty((0, vectors.shape[-1]))
        if len(acts) == 0:
            raise InterlinguaError(f"the activations are empty; {len(doc)} aligned words need rows for '{name}'.")
        width = int(max(int(pos.max()), int(acts.pos.max()))) + 1
        have = acts.doc.long() * width + acts.pos.long()
        order = torch.argsort(have)
        have_sorted = have[order]
        want = doc * width + pos
        k = torch.searchsorted(have_sorted, want).clamp(max=len(have_sorted) - 1)
        found = have_sorted[k] == want
        rows = order[k]
        word_end = torch.tensor([e for spans in self.words for _, e in spans], dtype=torch.long)
        bad = found & (acts.char_end[rows].long() != word_end)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise InterlinguaError(
                f"the activation rows do not line up with the words for '{name}': word "
                f"{self.word_strings()[i]!r} (document {int(doc[i])}) ends at character {int(word_end[i])} "
                f"but the token at its position {int(pos[i])} ends at {int(acts.char_end[rows[i]])}. Were "
                f"these activations extracted with another tokenizer (model {acts.meta.get('model', '?')!r})?"
            )
        if not bool(found.all()):
            miss = int((~found).nonzero()[0, 0])
            n_miss = int((~found).sum())
            raise InterlinguaError(
                f"{n_miss} aligned word(s) have no activation row for '{name}' (first: document "
                f"{int(doc[miss])}, position {int(pos[miss])}, word {self.word_strings()[miss]!r}). "
                f"Extract with skip_first=0 (skip_first={acts.meta.get('skip_first', '?')} here) and the "
                f"same max_tokens as the alignment ({self.max_tokens}), or align with that max_tokens."
            )
        return vectors[rows]

    def summary(self) -> dict[str, Any]:
        """Counts and coverage as plain JSON-able values."""
        return {
            "n_texts": len(self.texts),
            "n_words": self.n_words,
            "n_kept": len(self),
            "coverage": self.coverage,
            "tokenizers": {n: {"on_boundary": self.on_boundary.get(n),
                               "coverage_alone": (self.on_boundary[n] / self.n_words
                                                  if n in self.on_boundary and self.n_words else None)}
                           for n in self.names},
            "max_tokens": self.max_tokens,
        }

    def _index(self, name: str) -> list[list[int]]:
        if name not in self.token_index:
            raise KeyError(f"no tokenizer '{name}' in this alignment; have {self.names}")
        return self.token_index[name]


def align_offsets(
    texts: Sequence[str],
    offsets: Mapping[str, Sequence[Sequence[Span]]],
    *,
    max_tokens: int | None = None,
) -> WordAlignment:
    """:func:`align_words` on precomputed token offsets (``offsets[name][t]`` for text ``t``).

    Boundaries are found on the full tokenization; ``max_tokens`` then drops words whose
    last token is at or beyond that position, so truncation never makes a cut character
    look complete.
    """
    texts = list(texts)
    if not texts:
        raise InterlinguaError("no texts to align (the input is empty).")
    if not offsets:
        raise InterlinguaError("no tokenizers to align; pass at least one (name → tokenizer).")
    if max_tokens is not None and max_tokens < 1:
        raise InterlinguaError(f"max_tokens must be at least 1, got {max_tokens}.")
    for name, per_text in offsets.items():
        if len(per_text) != len(texts):
            raise InterlinguaError(f"'{name}' has offsets for {len(per_text)} texts, expected {len(texts)}.")
    names = list(offsets)
    limit = max_tokens if max_tokens is not None else _FAR
    words: list[list[Span]] = []
    index: dict[str, list[list[int]]] = {n: [] for n in names}
    on_boundary = dict.fromkeys(names, 0)
    n_words: list[int] = []
    for t, text in enumerate(texts):
        spans = word_spans(text)
        n_words.append(len(spans))
        per_name = {}
        for n in names:
            last = [i if i is not None and i < limit else None
                    for i in last_token_of_words(offsets[n][t], spans)]
            on_boundary[n] += sum(i is not None for i in last)
            per_name[n] = last
        keep = [w for w in range(len(spans)) if all(per_name[n][w] is not None for n in names)]
        words.append([spans[w] for w in keep])
        for n in names:
            index[n].append([per_name[n][w] for w in keep])
    return WordAlignment(texts=texts, words=words, token_index=index, n_words_per_text=n_words,
                         on_boundary=on_boundary, max_tokens=max_tokens)


def tokenize_offsets(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase) -> list[list[Span]]:
    """Token character spans of each text, with special tokens (``add_special_tokens=True``)."""
    if not getattr(tokenizer, "is_fast", False):
        raise InterlinguaError(
            f"{type(tokenizer).__name__} is a slow tokenizer and reports no character offsets; "
            "load the fast one (use_fast=True, needs the `tokenizers` package)."
        )
    enc = tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=True)
    return [[(int(a), int(b)) for a, b in per_text] for per_text in enc["offset_mapping"]]


def _as_tokenizer(name: str, obj: Any) -> PreTrainedTokenizerBase:
    from transformers import PreTrainedTokenizerBase

    if isinstance(obj, PreTrainedTokenizerBase):
        return obj
    tok = getattr(obj, "tokenizer", None)
    if isinstance(tok, PreTrainedTokenizerBase):
        return tok
    raise InterlinguaError(f"'{name}' is a {type(obj).__name__}, not a tokenizer or a loaded model.")


def align_words(
    texts: Sequence[str],
    tokenizers: Mapping[str, Any],
    *,
    max_tokens: int | None = None,
) -> WordAlignment:
    """Align the words of ``texts`` across ``tokenizers`` (name → tokenizer, one or more).

    Each value is a fast Hugging Face tokenizer or anything with a ``.tokenizer`` attribute
    (a :class:`~interlingua.models.LoadedModel`). Positions are those of the model's actual
    input (special tokens included, as :func:`interlingua.activations.extract` sees it);
    ``max_tokens`` truncates like ``extract(..., max_tokens=)`` and drops the words beyond.
    """
    if isinstance(texts, str):
        raise InterlinguaError("align_words takes a list of texts, not a single string.")
    texts = list(texts)
    if not texts:
        raise InterlinguaError("no texts to align (the input is empty).")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InterlinguaError(f"texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}.")
    if not tokenizers:
        raise InterlinguaError("no tokenizers to align; pass at least one (name → tokenizer).")
    offsets = {name: tokenize_offsets(texts, _as_tokenizer(name, tok)) for name, tok in tokenizers.items()}
    return align_offsets(texts, offsets, max_tokens=max_tokens)
