"""Activations stage: run texts through a model and keep the vectors at named hook points.

* :class:`Activations` holds vectors for one or more hook points plus a token index
  (document, position, character span, token id and string), so that every vector can be
  traced back to the text it came from.
* :func:`extract` computes them in memory; :func:`extract_to_disk` streams them into
  safetensors shards with a JSON manifest, written atomically, and resumes a killed job
  where it stopped with a bit-identical result.

The forward pass stops after the deepest requested hook point, documents are batched by
length so that little padding is computed, and everything runs under ``inference_mode``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from interlingua import _io
from interlingua.errors import InterlinguaError
from interlingua.models.hooks import HookPoint, capturing, stopping
from interlingua.models.loaded import LoadedModel

INDEX_FIELDS = ("doc", "pos", "char_start", "char_end", "token_id")
FORMAT = "interlingua.activations"
FORMAT_VERSION = 1


@dataclass
class Activations:
    """Vectors at one or more hook points, row-aligned with a token index.

    Row ``i`` of ``vectors[hook]`` is the activation of token ``tokens[i]`` at position
    ``pos[i]`` of document ``doc[i]``, covering characters ``char_start[i]:char_end[i]`` of
    ``texts[doc[i]]`` (special tokens such as BOS have an empty span).
    """

    vectors: dict[str, torch.Tensor]
    doc: torch.Tensor
    pos: torch.Tensor
    char_start: torch.Tensor
    char_end: torch.Tensor
    token_id: torch.Tensor
    tokens: list[str]
    texts: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.doc.shape[0])

    def __getitem__(self, hook: str) -> torch.Tensor:
        if hook not in self.vectors:
            raise KeyError(f"no activations for hook point '{hook}'; have {sorted(self.vectors)}")
        return self.vectors[hook]

    @property
    def hooks(self) -> list[str]:
        return list(self.vectors)

    def select(self, rows: torch.Tensor) -> Activations:
        """The rows picked by a boolean mask or an index tensor."""
        idx = rows.nonzero().squeeze(1) if rows.dtype == torch.bool else rows
        return Activations(
            vectors={k: v[idx] for k, v in self.vectors.items()},
            **{f: getattr(self, f)[idx] for f in INDEX_FIELDS},
            tokens=[self.tokens[i] for i in idx.tolist()],
            texts=self.texts,
            meta=dict(self.meta),
        )

    def context(self, row: int, width: int = 40) -> str:
        """The text around row ``row`` with its token marked as ``[[token]]``."""
        if self.texts is None:
            return self.tokens[row]
        text = self.texts[int(self.doc[row])]
        s, e = int(self.char_start[row]), int(self.char_end[row])
        return f"{text[max(0, s - width):s]}[[{text[s:e]}]]{text[e:e + width]}"

    @staticmethod
    def concat(parts: Sequence[Activations]) -> Activations:
        if not parts:
            raise InterlinguaError("no activations to concatenate (the input had no tokens).")
        first = parts[0]
        return Activations(
            vectors={h: torch.cat([p.vectors[h] for p in parts]) for h in first.vectors},
            **{f: torch.cat([getattr(p, f) for p in parts]) for f in INDEX_FIELDS},
            tokens=[t for p in parts for t in p.tokens],
            texts=first.texts,
            meta=dict(first.meta),
        )

    # ---- files: safetensors for tensors, JSON in its metadata for the rest -----------------

    def save(self, path: str | Path) -> None:
        """Save as one safetensors file (atomically); texts and meta ride in its JSON metadata."""
        tensors = {f"act.{h}": v for h, v in self.vectors.items()}
        tensors.update({f: getattr(self, f) for f in INDEX_FIELDS})
        meta = {"format": FORMAT, "tokens": json.dumps(self.tokens), "meta": json.dumps(self.meta)}
        if self.texts is not None:
            meta["texts"] = json.dumps(self.texts)
        _io.write_safetensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, *, remedy: str = "Write it again (Activations.save).") -> Activations:
        """Load a file written by :meth:`save`, or a whole directory written by :func:`extract_to_disk`.

        A damaged file is an :class:`InterlinguaError` naming it and ending with ``remedy``.
        """
        path = Path(path)
        if path.is_dir():
            return ActivationCache(path).load()
        if not path.is_file():
            raise InterlinguaError(f"no activations at {path}.")
        with _io.open_safetensors(path, remedy) as fh:
            md = fh.metadata() or {}
            if md.get("format") != FORMAT:
                raise InterlinguaError(f"{path} is not an interlingua activations file.")
            names = list(fh.keys())
            vectors = {n.removeprefix("act."): fh.get_tensor(n) for n in names if n.startswith("act.")}
            index = {f: fh.get_tensor(f) for f in INDEX_FIELDS}
        texts = json.loads(md["texts"]) if "texts" in md else None
        return cls(vectors=vectors, **index, tokens=json.loads(md["tokens"]), texts=texts,
                   meta=json.loads(md.get("meta", "{}")))


# --------------------------------------------------------------------------------------------
# Outliers (attention sinks)


def outlier_mask(norms: torch.Tensor, factor: float = 10.0) -> torch.Tensor:
    """Rows whose norm exceeds ``factor`` × the median norm (attention sinks and the like)."""
    return norms > factor * norms.median()


def outlier_report(acts: Activations, hook: str, factor: float = 10.0, top: int = 5) -> dict:
    """Summarise the high-norm rows at ``hook``: how many, at which positions, which tokens."""
    norms = acts[hook].float().norm(dim=-1)
    mask = outlier_mask(norms, factor)
    pos = acts.pos[mask]
    toks = [acts.tokens[i] for i in mask.nonzero().squeeze(1).tolist()]
    by_pos = torch.bincount(pos).tolist() if len(pos) else []
    common_pos = sorted(((c, p) for p, c in enumerate(by_pos) if c), reverse=True)[:top]
    counts: dict[str, int] = {}
    for t in toks:
        counts[t] = counts.get(t, 0) + 1
    return {
        "hook": hook,
        "factor": factor,
        "median_norm": round(float(norms.median()), 4) if len(norms) else None,
        "max_norm": round(float(norms.max()), 4) if len(norms) else None,
        "n_outliers": int(mask.sum()),
        "fraction": round(float(mask.float().mean()), 6) if len(norms) else 0.0,
        "top_positions": [{"pos": p, "count": c} for c, p in common_pos],
        "top_tokens": [{"token": t, "count": c} for t, c in sorted(counts.items(), key=lambda x: -x[1])[:top]],
    }


# --------------------------------------------------------------------------------------------
# Extraction


@dataclass
class _Tokenized:
    ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]


def _tokenize(model: LoadedModel, texts: Sequence[str], max_tokens: int | None) -> _Tokenized:
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InterlinguaError(f"max_tokens / --max-tokens must be a whole number of at least 1, not {max_tokens!r}.")
    if len(texts) == 0:
        raise InterlinguaError("no texts to extract activations from (the input is empty).")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InterlinguaError(f"texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}.")
    enc = model.tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    limit = model.context_length
    if max_tokens is not None:
        ids = [x[:max_tokens] for x in ids]
        offsets = [x[:max_tokens] for x in offsets]
    too_long = [(i, len(x)) for i, x in enumerate(ids) if len(x) > limit]
    if too_long:
        i, n = too_long[0]
        raise InterlinguaError(
            f"{len(too_long)} document(s) are longer than {model.name}'s context of {limit} tokens "
            f"(document {i} has {n}). Split the text into shorter documents, or pass "
            f"max_tokens / --max-tokens {limit} to truncate them."
        )
    if sum(len(x) for x in ids) == 0:
        raise InterlinguaError("the texts produced no tokens (are they all empty?).")
    return _Tokenized(ids=ids, offsets=[[tuple(o) for o in x] for x in offsets])


def _check_reading(tok: _Tokenized, skip_first: int, **counts: int) -> None:
    """Refuse settings that would read nothing or misread: a negative ``skip_first``, one that leaves
    no position of any document, or a count in ``counts`` (``batch_tokens``, ``shard_tokens``) below 1."""
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise InterlinguaError(f"{name} / --{name.replace('_', '-')} must be a whole number of at least 1, "
                                   f"not {value!r}.")
    if not isinstance(skip_first, int) or skip_first < 0:
        raise InterlinguaError(f"skip_first / --skip-first must be 0 or more, not {skip_first!r}.")
    longest = max(len(x) for x in tok.ids)
    if skip_first >= longest:
        raise InterlinguaError(
            f"skip_first / --skip-first {skip_first} leaves no positions to read: the longest of the "
            f"{len(tok.ids)} documents has {longest} tokens. Use a smaller value (1 leaves out just the first token)."
        )


def _batches(lengths: Sequence[int], docs: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group documents into batches of similar length, each at most ``batch_tokens`` padded tokens."""
    order = sorted(docs, key=lambda d: (-lengths[d], d))
    batches: list[list[int]] = []
    for d in order:
        if lengths[d] == 0:
            continue
        # Longest first, so the first document of a batch fixes its padded width.
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= batch_tokens:
            batches[-1].append(d)
        else:
            batches.append([d])
    return batches


def _forward_batch(
    model: LoadedModel, points: list[HookPoint], ids: list[list[int]]
) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in ids)
    pad = model.tokenizer.pad_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(x)] = 1
    base = model.model.base_model
    with torch.inference_mode(), capturing(model.model, points) as store, stopping():
        base(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False)
    missing = [p.name for p in points if p.name not in store]
    if missing:
        raise RuntimeError(f"hook points {missing} did not fire during the forward pass")
    return store


def _read_docs(
    model: LoadedModel,
    tok: _Tokenized,
    docs: Sequence[int],
    points: list[HookPoint],
    rows_of: Callable[[int], list[int] | slice],
    *,
    batch_tokens: int,
    on_tokens: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``docs`` in length-sorted batches and keep, per hook, the rows ``rows_of(doc)`` of
    each document, concatenated in the order of ``docs``."""
    lengths = [len(x) for x in tok.ids]
    kept: dict[int, dict[str, torch.Tensor]] = {}
    for batch in _batches(lengths, docs, batch_tokens):
        store = _forward_batch(model, points, [tok.ids[d] for d in batch])
        for r, d in enumerate(batch):
            rows = rows_of(d)
            # a slice is a view, which would keep the whole padded batch alive until the final
            # concatenation: clone it; indexing with a list already copies
            kept[d] = {h: (store[h][r, rows].clone() if isinstance(rows, slice) else store[h][r, rows]).cpu()
                       for h in store}
        if on_tokens:
            on_tokens(sum(lengths[d] for d in batch))
    return {
        p.name: torch.cat([kept[d][p.name] for d in docs if d in kept])
        if kept else torch.empty(0, model.d_model, dtype=model.dtype)
        for p in points
    }


def _extract_docs(
    model: LoadedModel,
    tok: _Tokenized,
    docs: Sequence[int],
    points: list[HookPoint],
    *,
    batch_tokens: int,
    skip_first: int,
    on_tokens: Callable[[int], None] | None = None,
) -> Activations:
    """Activations for ``docs`` (in document order, positions ascending)."""
    lengths = [len(x) for x in tok.ids]
    vectors = _read_docs(model, tok, docs, points, lambda d: slice(skip_first, lengths[d]),
                         batch_tokens=batch_tokens, on_tokens=on_tokens)
    rows = [(d, p) for d in docs for p in range(skip_first, lengths[d])]
    token_ids = [tok.ids[d][p] for d, p in rows]
    return Activations(
        vectors=vectors,
        doc=torch.tensor([d for d, _ in rows], dtype=torch.long),
        pos=torch.tensor([p for _, p in rows], dtype=torch.long),
        char_start=torch.tensor([tok.offsets[d][p][0] for d, p in rows], dtype=torch.long),
        char_end=torch.tensor([tok.offsets[d][p][1] for d, p in rows], dtype=torch.long),
        token_id=torch.tensor(token_ids, dtype=torch.long),
        tokens=model.tokenizer.convert_ids_to_tokens(token_ids),
    )


def _meta(model: LoadedModel, points: list[HookPoint], skip_first: int, max_tokens: int | None) -> dict:
    from interlingua import __version__

    return {
        "model": model.name,
        "model_source": model.source,
        "architecture": model.architecture,
        "d_model": model.d_model,
        "hooks": [p.name for p in points],
        "dtype": str(model.dtype).removeprefix("torch."),
        "skip_first": skip_first,
        "max_tokens": max_tokens,
        "interlingua_version": __version__,
    }


def _points(model: LoadedModel, hooks: Sequence[str] | str) -> list[HookPoint]:
    if isinstance(hooks, str):
        hooks = [hooks]
    if not hooks:
        raise InterlinguaError("name at least one hook point, e.g. resid_post.10.")
    return sorted({model.hook(h) for h in hooks})


def extract(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | str,
    *,
    batch_tokens: int = 4096,
    skip_first: int = 0,
    max_tokens: int | None = None,
    progress: bool = False,
) -> Activations:
    """Activations of ``texts`` at ``hooks``, in memory.

    ``skip_first`` leaves out the first positions of every document (BOS / attention sinks);
    ``max_tokens`` truncates longer documents (otherwise they are an error if they exceed the
    model's context); ``batch_tokens`` bounds the padded tokens per forward pass.
    """
    points = _points(model, hooks)
    tok = _tokenize(model, texts, max_tokens)
    _check_reading(tok, skip_first, batch_tokens=batch_tokens)
    total = sum(len(x) for x in tok.ids)
    with tqdm(total=total, unit="tok", desc=f"{model.name}", disable=not progress) as bar:
        acts = _extract_docs(model, tok, range(len(texts)), points, batch_tokens=batch_tokens,
                             skip_first=skip_first, on_tokens=bar.update)
    acts.texts = list(texts)
    acts.meta = _meta(model, points, skip_first, max_tokens)
    return acts


# --------------------------------------------------------------------------------------------
# Streaming to disk, resumable


class ActivationCache:
    """A directory of activation shards written by :func:`extract_to_disk`.

    ``manifest.json`` names the job (model, hooks, settings, a hash of the texts) and the
    shards finished so far; ``texts.json`` holds the documents; ``shard-NNNNN.safetensors``
    files hold consecutive ranges of documents.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise InterlinguaError(f"{self.path} holds no activation cache (no manifest.json).")
        self.manifest = _io.load_json(manifest, "Extract again into a new directory (or with --overwrite).")
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise InterlinguaError(f"{manifest} is not an interlingua extraction manifest.")

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def texts(self) -> list[str]:
        return _io.read_json(self.path / "texts.json")

    def shards(self) -> Iterator[Activations]:
        """Yield the finished shards one at a time (for data larger than memory)."""
        for shard in self.manifest["shards"]:
            acts = Activations.load(self.path / shard["file"], remedy="Delete that file and run the same extract "
                                    "command again: the job recomputes just the missing shard.")
            yield acts

    def load(self) -> Activations:
        if not self.complete:
            raise InterlinguaError(
                f"the extraction in {self.path} did not finish; run the same command again to resume it."
            )
        acts = Activations.concat(list(self.shards()))
        acts.texts = self.texts
        acts.meta = dict(self.manifest["job"])
        return acts


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _plan_shards(lengths: Sequence[int], shard_tokens: int) -> list[tuple[int, int]]:
    shards, start, acc = [], 0, 0
    for i, n in enumerate(lengths):
        acc += n
        if acc >= shard_tokens:
            shards.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(lengths):
        shards.append((start, len(lengths)))
    return shards


_SHARD_NAME = re.compile(r"shard-\d{5,}\.safetensors")


def _is_output_file(name: str) -> bool:
    """Whether ``name`` is a file :func:`extract_to_disk` writes (the manifest, the texts, a shard)."""
    return name in ("manifest.json", "texts.json") or _SHARD_NAME.fullmatch(name) is not None


def _is_leftover(name: str) -> bool:
    """Whether ``name`` is interlingua's temporary copy of one of its output files (a killed write)."""
    final = _io.leftover_of(name)
    return final is not None and _is_output_file(final)


def _own_manifest(out: Path) -> dict | None:
    """The manifest in ``out`` if it is interlingua's extraction manifest, else None."""
    path = out / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = _io.read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def _is_our_texts(path: Path, job: dict) -> bool:
    """Whether ``path`` holds exactly this job's texts (a first write killed before its manifest)."""
    try:
        texts = _io.read_json(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(texts, list) and all(isinstance(t, str) for t in texts) \
        and texts_digest(texts) == job["texts_sha256"]


def _foreign_entries(out: Path, manifest: dict | None, job: dict) -> list[str]:
    """What in ``out`` interlingua did not write: only those are ever kept from ``--overwrite``.

    With an extraction manifest, the manifest, texts and shard files and their temporary copies
    are interlingua's. Without one, only temporary copies are (a first write killed before the
    manifest landed), and a ``texts.json`` holding exactly this job's texts.
    """
    foreign = []
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name == _io.LOCK_FILE:
            continue
        if not entry.is_symlink() and _is_leftover(name):  # a killed write's private directory, or an older temporary file
            continue
        if manifest is not None and entry.is_file() and not entry.is_symlink() and _is_output_file(name):
            continue
        if manifest is None and name == "texts.json" and entry.is_file() and _is_our_texts(entry, job):
            continue
        foreign.append(name)
    return foreign


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _clear_extraction(out: Path) -> None:
    """Delete interlingua's extraction files in ``out`` (and nothing else), the manifest last.

    The directory itself stays. Killed half way, the manifest is still there, so the same
    command with ``--overwrite`` finishes the job, and without it the old job resumes.
    """
    for entry in sorted(out.iterdir()):
        if entry.name != "manifest.json" and (_is_output_file(entry.name) or _is_leftover(entry.name)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)


def _prepare_dir(out: Path, job: dict, overwrite: bool) -> dict | None:
    """Return the existing manifest to resume from, or None for a fresh start.

    Nothing but interlingua's own extraction files is ever deleted: ``--overwrite`` replaces an
    extraction, and a directory holding anything else is refused with or without it.
    """
    if not out.exists() or not any(e.name != _io.LOCK_FILE for e in out.iterdir()):
        return None
    manifest = _own_manifest(out)
    foreign = _foreign_entries(out, manifest, job)
    if manifest is None:
        if foreign:
            raise InterlinguaError(
                f"{out} is not empty and holds no interlingua extraction ({_listing(foreign)}); choose a new or "
                "empty directory (--overwrite only ever replaces an extraction, never other files)."
            )
        return None  # only what a first write left when it was killed: start afresh
    differs = sorted(k for k in set(job) | set(manifest.get("job", {}))
                     if job.get(k) != manifest.get("job", {}).get(k))
    if foreign and (overwrite or differs):
        raise InterlinguaError(
            f"{out} holds an interlingua extraction and other files ({_listing(foreign)}); --overwrite only "
            "replaces a directory that holds nothing else. Move those files, or choose a new or empty directory."
        )
    if overwrite:
        with _io.disk_errors(out):
            _clear_extraction(out)
        return None
    if differs:
        raise InterlinguaError(
            f"{out} already holds a different extraction (differs in: {', '.join(differs)}). Choose "
            "another directory, or pass --overwrite to replace it."
        )
    return manifest


def extract_to_disk(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | str,
    out: str | Path,
    *,
    shard_tokens: int = 65536,
    batch_tokens: int = 4096,
    skip_first: int = 0,
    max_tokens: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    after_shard: Callable[[int], None] | None = None,
) -> ActivationCache:
    """Stream activations of ``texts`` into shards under ``out``; resume if ``out`` holds this job.

    Shards cover fixed ranges of documents decided before any compute, so a resumed job
    computes exactly the batches an uninterrupted one would and the result is bit-identical.
    ``after_shard(i)`` is called after shard ``i`` is safely on disk.
    """
    out = Path(out)
    points = _points(model, hooks)
    tok = _tokenize(model, texts, max_tokens)
    _check_reading(tok, skip_first, batch_tokens=batch_tokens, shard_tokens=shard_tokens)
    lengths = [len(x) for x in tok.ids]
    job = {
        **_meta(model, points, skip_first, max_tokens),
        "n_docs": len(texts),
        "n_tokens": sum(lengths),
        "texts_sha256": texts_digest(texts),
        "shard_tokens": shard_tokens,
        "batch_tokens": batch_tokens,
    }
    job.pop("model_source")  # the cache location may move; the model name and version identify it
    job.pop("interlingua_version")
    if out.exists() and not out.is_dir():
        raise InterlinguaError(f"--out {out} is a file; give a directory.")
    with _io.writing(out):  # one process per directory: a second one is refused, never mixed in
        return _write_shards(model, tok, texts, points, out, job, plan=_plan_shards(lengths, shard_tokens),
                             overwrite=overwrite, progress=progress, after_shard=after_shard)


def _write_shards(model: LoadedModel, tok: _Tokenized, texts: Sequence[str], points: list[HookPoint], out: Path,
                  job: dict, *, plan: list[tuple[int, int]], overwrite: bool, progress: bool,
                  after_shard: Callable[[int], None] | None) -> ActivationCache:
    """The body of :func:`extract_to_disk`, run while holding ``out``'s lock: prepare, resume, write, clean up."""
    lengths = [len(x) for x in tok.ids]
    manifest = _prepare_dir(out, job, overwrite)
    if manifest is None:
        _io.write_json(out / "texts.json", list(texts))
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "job": job, "shards": [], "complete": False}
        _io.write_json(out / "manifest.json", manifest)
    elif not (out / "texts.json").is_file():  # an --overwrite killed half way: the same job resumes
        _io.write_json(out / "texts.json", list(texts))
    _io.remove_leftovers(out, _is_output_file)  # temporary files of killed writes: never used, never kept
    done = {s["index"] for s in manifest["shards"] if (out / s["file"]).is_file()}
    manifest["shards"] = [s for s in manifest["shards"] if s["index"] in done]
    remaining = sum(sum(lengths[a:b]) for i, (a, b) in enumerate(plan) if i not in done)
    with tqdm(total=remaining, unit="tok", desc=f"{model.name} → {out.name}", disable=not progress) as bar:
        for i, (a, b) in enumerate(plan):
            if i in done:
                continue
            acts = _extract_docs(model, tok, range(a, b), points, batch_tokens=job["batch_tokens"],
                                 skip_first=job["skip_first"], on_tokens=bar.update)
            name = f"shard-{i:05d}.safetensors"
            acts.meta = {"shard": i, "docs": [a, b]}
            acts.save(out / name)
            manifest["shards"].append({"index": i, "file": name, "docs": [a, b], "n_vectors": len(acts)})
            manifest["shards"].sort(key=lambda s: s["index"])
            _io.write_json(out / "manifest.json", manifest)
            if after_shard:
                after_shard(i)
    manifest["complete"] = True
    _io.write_json(out / "manifest.json", manifest)
    _io.remove_leftovers(out, _is_output_file)
    return ActivationCache(out)


# --------------------------------------------------------------------------------------------
# Reading a few positions per text (concept readouts)


def at_positions(
    model: LoadedModel,
    texts: Sequence[str],
    hooks: Sequence[str] | str,
    positions: Sequence[Sequence[int]] | None = None,
    *,
    batch_tokens: int = 4096,
    max_tokens: int | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Vectors at chosen token positions of each text: ``{hook: [sum of len(positions[t]), d]}``.

    ``positions[t]`` are token positions of text ``t`` (negative counts from its end);
    ``None`` reads the last token of every text. Only the picked rows are kept, so a
    layer sweep over many hook points stays small in memory.
    """
    points = _points(model, hooks)
    tok = _tokenize(model, texts, max_tokens)
    lengths = [len(x) for x in tok.ids]
    if positions is None:
        positions = [[-1]] * len(texts)
    if len(positions) != len(texts):
        raise InterlinguaError(f"{len(positions)} position lists for {len(texts)} texts.")
    picks = []
    for t, pos in enumerate(positions):
        resolved = [p + lengths[t] if p < 0 else p for p in pos]
        if any(not 0 <= p < lengths[t] for p in resolved):
            raise InterlinguaError(f"text {t} has {lengths[t]} tokens; cannot read positions {list(pos)}.")
        picks.append(resolved)
    with tqdm(total=sum(lengths), unit="tok", desc=model.name, disable=not progress) as bar:
        vectors = _read_docs(model, tok, range(len(texts)), points, picks.__getitem__,
                             batch_tokens=batch_tokens, on_tokens=bar.update)
    return {h: v.float() for h, v in vectors.items()}


class Reader:
    """One model's activations at chosen positions, read once and remembered.

    A translation reads the same texts many times over: the native concept's splits, the
    evaluation texts, every control. A ``Reader`` owns the memo (``(hook, text, positions)`` →
    rows), so nothing is computed twice with the same model; whatever is missing for a call is
    read in a single forward pass that stops at the deepest missing hook. Pass one reader per
    model to every step that reads that model (it holds no state besides the memo).
    """

    def __init__(self, model: LoadedModel, *, batch_tokens: int = 4096, max_tokens: int | None = None,
                 progress: bool = False):
        self.model = model
        self.batch_tokens = batch_tokens
        self.max_tokens = max_tokens
        self.progress = progress
        self._memo: dict[tuple[str, str, tuple[int, ...]], torch.Tensor] = {}
        self.tokens_read = 0  # real tokens run through the model so far (for cost reports)

    def read(self, texts: Sequence[str], hooks: Sequence[str] | str,
             positions: Sequence[Sequence[int]] | None = None) -> dict[str, torch.Tensor]:
        """Like :func:`at_positions` (same arguments, same result), served from the memo where possible."""
        names = [p.name for p in _points(self.model, hooks)]
        if positions is None:
            positions = [[-1]] * len(texts)
        if len(positions) != len(texts):
            raise InterlinguaError(f"{len(positions)} position lists for {len(texts)} texts.")
        keys = [(t, tuple(int(p) for p in pos)) for t, pos in zip(texts, positions)]
        missing = {k: None for k in keys if any((h, *k) not in self._memo for h in names)}
        if missing:
            todo = list(missing)
            want = sorted({h for k in todo for h in names if (h, *k) not in self._memo},
                          key=lambda h: self.model.hook(h))
            got = at_positions(self.model, [k[0] for k in todo], want, [list(k[1]) for k in todo],
                               batch_tokens=self.batch_tokens, max_tokens=self.max_tokens, progress=self.progress)
            self.tokens_read += sum(len(x) for x in _tokenize(self.model, [k[0] for k in todo], self.max_tokens).ids)
            sizes = [len(k[1]) for k in todo]
            for h in want:
                for k, rows in zip(todo, torch.split(got[h], sizes)):
                    self._memo[(h, *k)] = rows
        width = self.model.d_model
        return {h: torch.cat([self._memo[(h, *k)] for k in keys]) if keys else torch.empty(0, width)
                for h in names}
