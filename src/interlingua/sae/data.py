"""Where an SAE's training vectors come from, in a replayable order.

A *source* cuts its data into numbered chunks (a range of rows of an in-memory tensor, a group of
cache shards, a group of documents run through the model) and returns chunk ``i`` the same way
every time. :class:`Batches` walks the chunks in a seeded order, shuffles rows within a chunk,
and yields fixed-size batches that may span chunks. Its whole state is three integers
(epoch, chunk position, rows used of that chunk), so a resumed run rebuilds exactly the batches an
uninterrupted one would have seen.

Every source drops the positions an SAE should not learn from: the first ``skip_first`` tokens
of each document (BOS / attention sink) and rows whose norm exceeds ``outlier_factor`` × the
median norm at any trained hook (massive activations). Each hook gets the same rows, so SAEs on
several hooks train from one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from interlingua.activations import ActivationCache, Activations, extract, outlier_mask
from interlingua.errors import InterlinguaError
from interlingua.models.loaded import LoadedModel


@dataclass(frozen=True)
class Exclusion:
    """Positions left out of training: the first ``skip_first`` of each document, and rows whose norm
    is above ``outlier_factor`` × the chunk's median norm at any hook (``0`` disables that rule)."""

    skip_first: int = 1
    outlier_factor: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.skip_first, bool) or not isinstance(self.skip_first, int) or self.skip_first < 0:
            raise InterlinguaError(f"skip_first / --skip-first must be 0 or more, not {self.skip_first!r}.")
        if not (math.isfinite(self.outlier_factor) and (self.outlier_factor == 0 or self.outlier_factor >= 1)):
            raise InterlinguaError(f"outlier_factor / --outlier-factor must be 0 (keep all) or a finite number of "
                                   f"at least 1, not {self.outlier_factor!r}.")

    def keep(self, acts: Activations, hooks: Sequence[str]) -> Tensor:
        """Boolean mask of the rows of ``acts`` to train on."""
        keep = acts.pos >= self.skip_first
        if self.outlier_factor > 0 and len(acts):
            for h in hooks:
                keep &= ~outlier_mask(acts[h].float().norm(dim=1), self.outlier_factor)
        return keep


class Source(Protocol):
    """Numbered chunks of training rows, identical on every call."""

    hooks: list[str]

    def n_chunks(self) -> int: ...

    def chunk(self, i: int) -> dict[str, Tensor]: ...

    def describe(self) -> dict: ...


def _check(chunk: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    for hook, x in chunk.items():
        if x.ndim != 2:
            raise InterlinguaError(f"activations at {hook} must be [rows, d] (got shape {tuple(x.shape)}) in {where}.")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).any(1).nonzero().squeeze(1)
            raise InterlinguaError(
                f"the activations at {hook} contain NaN or infinite values ({len(bad)} of {len(x)} rows, first "
                f"row {int(bad[0])}) in {where}. The model may overflow in its dtype: extract in float32, or "
                "raise the outlier exclusion (--outlier-factor)."
            )
    return chunk


class TensorSource:
    """Rows already in memory: ``{hook: [n, d]}``, cut into chunks of ``chunk_rows`` (default: one)."""

    def __init__(self, vectors: dict[str, Tensor] | Tensor, chunk_rows: int | None = None, hook: str = "x"):
        if isinstance(vectors, Tensor):
            vectors = {hook: vectors}
        if not vectors:
            raise InterlinguaError("no activations to train on (no hooks given).")
        lengths = {len(v) for v in vectors.values()}
        if len(lengths) != 1:
            raise InterlinguaError(f"activations for different hooks have different row counts: {sorted(lengths)}.")
        self.vectors = vectors
        self.hooks = list(vectors)
        self.rows = lengths.pop()
        if self.rows == 0:
            raise InterlinguaError("no activations to train on (0 rows).")
        self.chunk_rows = chunk_rows or self.rows

    def n_chunks(self) -> int:
        return -(-self.rows // self.chunk_rows)

    def chunk(self, i: int) -> dict[str, Tensor]:
        sl = slice(i * self.chunk_rows, min((i + 1) * self.chunk_rows, self.rows))
        return _check({h: v[sl] for h, v in self.vectors.items()}, f"rows {sl.start}–{sl.stop}")

    def describe(self) -> dict:
        return {"kind": "tensor", "rows": self.rows, "hooks": self.hooks}


class CacheSource:
    """An activation cache written by ``interlingua extract``; ``shards_per_chunk`` shards per chunk."""

    def __init__(self, cache: ActivationCache | str, hooks: Sequence[str] | None = None,
                 exclusion: Exclusion = Exclusion(), shards_per_chunk: int = 4):
        self.cache = cache if isinstance(cache, ActivationCache) else ActivationCache(cache)
        if not self.cache.complete:
            raise InterlinguaError(f"the extraction in {self.cache.path} did not finish; run the same extract "
                                   "command again to complete it before training.")
        have = list(self.cache.manifest["job"]["hooks"])
        self.hooks = list(hooks) if hooks else have
        missing = [h for h in self.hooks if h not in have]
        if missing:
            raise InterlinguaError(f"the cache at {self.cache.path} has no activations for {missing}; it holds "
                                   f"{have}. Extract those hook points, or train on one of these.")
        self.exclusion = exclusion
        self.shards = list(self.cache.manifest["shards"])
        if not self.shards:
            raise InterlinguaError(f"the cache at {self.cache.path} holds no shards (no tokens).")
        self.per_chunk = max(1, shards_per_chunk)

    def n_chunks(self) -> int:
        return -(-len(self.shards) // self.per_chunk)

    def chunk(self, i: int) -> dict[str, Tensor]:
        parts = [Activations.load(self.cache.path / s["file"])
                 for s in self.shards[i * self.per_chunk:(i + 1) * self.per_chunk]]
        acts = Activations.concat(parts)
        keep = self.exclusion.keep(acts, self.hooks)
        return _check({h: acts[h][keep] for h in self.hooks}, f"{self.cache.path} chunk {i}")

    def describe(self) -> dict:
        job = self.cache.manifest["job"]
        return {"kind": "cache", "path": str(self.cache.path), "model": job.get("model"), "hooks": self.hooks,
                "n_tokens": job.get("n_tokens"), "exclusion": vars(self.exclusion)}


class ModelSource:
    """Activations computed on the fly: ``docs_per_chunk`` documents per forward batch group, all hooks
    from one forward pass that stops after the deepest of them."""

    def __init__(self, model: LoadedModel, texts: Sequence[str], hooks: Sequence[str],
                 exclusion: Exclusion = Exclusion(), docs_per_chunk: int = 64, max_tokens: int | None = None,
                 batch_tokens: int = 4096):
        if not texts:
            raise InterlinguaError("no texts to train on (the input is empty).")
        self.model = model
        self.texts = list(texts)
        self.hooks = [model.hook(h).name for h in hooks]  # validates, with the list of valid names
        if not self.hooks:
            raise InterlinguaError("name at least one hook point to train on, e.g. resid_post.10.")
        self.exclusion = exclusion
        self.docs_per_chunk = max(1, docs_per_chunk)
        self.max_tokens = max_tokens or min(model.context_length, 1024)
        self.batch_tokens = batch_tokens

    def n_chunks(self) -> int:
        return -(-len(self.texts) // self.docs_per_chunk)

    def chunk(self, i: int) -> dict[str, Tensor]:
        texts = self.texts[i * self.docs_per_chunk:(i + 1) * self.docs_per_chunk]
        acts = extract(self.model, texts, self.hooks, max_tokens=self.max_tokens, batch_tokens=self.batch_tokens)
        keep = self.exclusion.keep(acts, self.hooks)
        return _check({h: acts[h][keep].float() for h in self.hooks}, f"documents {i * self.docs_per_chunk}–"
                      f"{i * self.docs_per_chunk + len(texts)}")

    def describe(self) -> dict:
        return {"kind": "model", "model": self.model.name, "hooks": self.hooks, "documents": len(self.texts),
                "exclusion": vars(self.exclusion), "max_tokens": self.max_tokens}


@dataclass
class BatchState:
    """Where :class:`Batches` stands: chunk ``order[position]`` of ``epoch``, ``offset`` rows used."""

    epoch: int = 0
    position: int = 0
    offset: int = 0


class Batches:
    """Fixed-size batches ``{hook: [batch_size, d]}`` from a source, reproducible from a :class:`BatchState`."""

    def __init__(self, source: Source, batch_size: int, seed: int = 0, state: BatchState | None = None):
        if batch_size < 1:
            raise InterlinguaError(f"batch size must be positive (got {batch_size}).")
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.state = state or BatchState()
        self._loaded: tuple[tuple[int, int], dict[str, Tensor]] | None = None

    def _order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.source.n_chunks(), generator=g).tolist()

    def _rows(self, epoch: int, position: int) -> dict[str, Tensor]:
        """The shuffled rows of the chunk at ``position`` of ``epoch`` (cached while in use)."""
        key = (epoch, position)
        if self._loaded is None or self._loaded[0] != key:
            index = self._order(epoch)[position]
            chunk = self.source.chunk(index)
            n = len(next(iter(chunk.values())))
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 1_000_033 + index)
            perm = torch.randperm(n, generator=g)
            self._loaded = (key, {h: v[perm] for h, v in chunk.items()})
        return self._loaded[1]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return self

    def __next__(self) -> dict[str, Tensor]:
        parts: list[dict[str, Tensor]] = []
        need = self.batch_size
        empty_chunks = 0
        st = self.state
        while need > 0:
            rows = self._rows(st.epoch, st.position)
            n = len(next(iter(rows.values())))
            take = min(need, n - st.offset)
            if take > 0:
                parts.append({h: v[st.offset:st.offset + take] for h, v in rows.items()})
                need -= take
                st.offset += take
                empty_chunks = 0
            if st.offset >= n:
                if n == 0:
                    empty_chunks += 1
                    if empty_chunks > self.source.n_chunks():
                        raise InterlinguaError("no training rows are left after excluding BOS and high-norm "
                                               "positions; give more text or relax the exclusion.")
                st.position, st.offset = st.position + 1, 0
                if st.position >= self.source.n_chunks():
                    st.epoch, st.position = st.epoch + 1, 0
        return {h: torch.cat([p[h] for p in parts]) for h in parts[0]}
