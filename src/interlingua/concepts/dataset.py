"""Concept definitions: model-independent, plain files a person can write by hand.

A concept file is JSON (or YAML, if PyYAML is installed, with the same structure)::

    {
      "name": "sentiment",
      "description": "positive (1) vs negative (0) evaluation of something",
      "kind": "contextual",                       # optional: lexical | contextual | order-sensitive
      "train": [{"positive": "I loved it.", "negative": "I hated it."}, ...],
      "test":  [{"text": "What a great day.", "label": 1}, ...],
      "ood":   [...]                               # optional, a different template family
    }

Each split is a list of contrastive pairs (``positive`` / ``negative``) or of labelled texts
(``text`` with ``label`` 0, 1 or a float in [0, 1]; floats are binarised at 0.5 for AUROC and
used as soft targets by the logistic probe). A labelled text may also carry word-level
labels, ``"words": [["cats", 1], ["mat", 0]]``, found in order of occurrence in the text.

Any item, pair or labelled text, may name the template it was written from,
``"template": "frame/3"`` (any string; items of one template share it)::

      "train": [{"positive": "She saw the cats", "negative": "She saw the cat", "template": "frame/3"}, ...]

Items of one template are near-duplicates of each other, so code that holds data out (the
validation part of ``train`` in concept discovery) holds out whole templates; a file is
expected to draw ``test`` from templates never used in ``train``. An item without a template is
its own template.

Every error names the file and, where it can, the line.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib.resources import files
from pathlib import Path

import torch

from interlingua.errors import InterlinguaError

SPLITS = ("train", "test", "ood")
KINDS = ("lexical", "contextual", "order-sensitive")
MIN_PER_CLASS = {"train": 8, "test": 4, "ood": 4}
PAIR_KEYS = {"positive", "negative", "template"}
TEXT_KEYS = {"text", "label", "words", "template"}


@dataclass
class SplitData:
    """One split as parallel lists: texts, labels, group ids (the two texts of a pair share one)
    and template ids (the items written from one template share one).

    ``templates`` defaults to ``groups`` (every pair or text its own template). Template ids
    are integers numbered over the whole concept file (:attr:`ConceptDataset.template_names`
    maps them back to the file's strings), so one template has the same id in every split.
    """

    texts: list[str]
    labels: torch.Tensor  # float, [n]
    groups: torch.Tensor  # long, [n]
    pairs: torch.Tensor | None = None  # [n_pairs, 2] row indices (positive, negative), if paired
    words: list[list[tuple[int, int, float]]] | None = None  # per text: (char start, end, label)
    templates: torch.Tensor | None = None  # long, [n]; None: the same as ``groups``

    def __post_init__(self) -> None:
        if self.templates is None:
            self.templates = self.groups.clone()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def binary(self) -> torch.Tensor:
        return self.labels > 0.5

    def class_counts(self, read: str = "last") -> tuple[int, int]:
        """(positives, negatives) among texts, or among labelled words for ``read="words"``."""
        if read == "words":
            labels = torch.tensor([lab for spans in self.words or [] for _, _, lab in spans])
        else:
            labels = self.labels
        return int((labels > 0.5).sum()), int((labels <= 0.5).sum())

    def subset(self, groups: torch.Tensor) -> SplitData:
        """The items whose group is in ``groups`` (pairs stay whole)."""
        keep = torch.isin(self.groups, groups)
        idx = keep.nonzero().squeeze(1)
        remap = torch.full((len(self.labels),), -1, dtype=torch.long)
        remap[idx] = torch.arange(len(idx))
        pairs = None
        if self.pairs is not None:
            p = self.pairs[keep[self.pairs[:, 0]]]
            pairs = remap[p]
        return SplitData(
            texts=[self.texts[i] for i in idx.tolist()] if self.texts else [], labels=self.labels[idx], groups=self.groups[idx],
            pairs=pairs, words=[self.words[i] for i in idx.tolist()] if self.words else None,
            templates=self.templates[idx],
        )


@dataclass
class ConceptDataset:
    name: str
    description: str
    items: dict[str, list[dict]]
    kind: str | None = None
    source: str = ""
    path: str = "<memory>"
    raw_text: str = field(default="", repr=False)

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if self.items.get(s)]

    def head(self, n: int) -> ConceptDataset:
        """The same concept with only the first ``n`` items of every split (``n`` = 0: all of them).

        The generator writes items in random order, so this is a random subset; it makes a quick
        run (the demo, a check on a slow CPU) cheaper at the price of wider intervals.
        """
        if not n:
            return self
        if n < 0:
            raise InterlinguaError(f"the number of items per split must be >= 0, not {n}.")
        return replace(self, items={s: v[:n] for s, v in self.items.items()})

    def size(self, split: str) -> int:
        return len(self.items.get(split, []))

    @cached_property
    def template_names(self) -> list[str]:
        """The distinct ``"template"`` strings of the file, sorted; ``SplitData.templates`` ids
        below ``len(template_names)`` index this list (higher ids: items without a template)."""
        return sorted({item["template"] for items in self.items.values() for item in items if "template" in item})

    @cached_property
    def digest(self) -> str:
        import hashlib

        blob = json.dumps({s: self.items.get(s, []) for s in SPLITS}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def split(self, name: str) -> SplitData:
        if name not in self.items or not self.items[name]:
            raise InterlinguaError(f"concept '{self.name}' ({self.path}) has no '{name}' split.")
        return _to_split(self, name)

    def require(self, split: str, minimum: int | None = None, read: str = "last") -> None:
        """Fail clearly if ``split`` has fewer than ``minimum`` examples of either class
        (labelled words, for ``read="words"``)."""
        minimum = MIN_PER_CLASS[split] if minimum is None else minimum
        data = self.split(split)
        if read == "words" and data.words is None:
            raise InterlinguaError(
                f"concept '{self.name}' ({self.path}): split '{split}' has no word-level labels "
                '("words": [["word", label], ...]), which reading at words needs.'
            )
        n_pos, n_neg = data.class_counts(read)
        unit = "labelled words" if read == "words" else "examples"
        if min(n_pos, n_neg) < minimum:
            raise InterlinguaError(
                f"concept '{self.name}' ({self.path}): split '{split}' has {n_pos} positive and {n_neg} "
                f"negative {unit}; at least {minimum} of each are needed. Add examples to the file."
            )


def _line_of(ds: ConceptDataset, text: str) -> str:
    for needle in (json.dumps(text, ensure_ascii=False), json.dumps(text)):
        at = ds.raw_text.find(needle)
        if at >= 0:
            return f" line {ds.raw_text.count(chr(10), 0, at) + 1}"
    return ""


def _first_text(item: dict) -> str | None:
    """The item's first text, for locating its line in the file."""
    for key in ("positive", "text", "negative"):
        if isinstance(item.get(key), str):
            return item[key]
    return None


def _fail(ds: ConceptDataset, where: str, problem: str, text: str | None = None) -> InterlinguaError:
    line = _line_of(ds, text) if text is not None else ""
    return InterlinguaError(f"{ds.path}{line} ({where}): {problem}")


def _to_split(ds: ConceptDataset, split: str) -> SplitData:
    texts: list[str] = []
    labels: list[float] = []
    groups: list[int] = []
    pairs: list[tuple[int, int]] = []
    words: list[list[tuple[int, int, float]]] = []
    templates: list[int] = []
    names = {t: i for i, t in enumerate(ds.template_names)}
    for g, item in enumerate(ds.items[split]):
        # no template: the item is its own (ids past the named ones; equal to groups if none is named)
        template = names[item["template"]] if "template" in item else len(names) + g
        if "positive" in item:
            pairs.append((len(texts), len(texts) + 1))
            texts += [item["positive"], item["negative"]]
            labels += [1.0, 0.0]
            groups += [g, g]
            words += [[], []]
            templates += [template, template]
        else:
            texts.append(item["text"])
            labels.append(float(item["label"]))
            groups.append(g)
            words.append(_word_spans(ds, split, g, item))
            templates.append(template)
    return SplitData(
        texts=texts, labels=torch.tensor(labels), groups=torch.tensor(groups, dtype=torch.long),
        pairs=torch.tensor(pairs, dtype=torch.long) if pairs and len(pairs) * 2 == len(texts) else None,
        words=words if any(words) else None, templates=torch.tensor(templates, dtype=torch.long),
    )


def _word_spans(ds: ConceptDataset, split: str, i: int, item: dict) -> list[tuple[int, int, float]]:
    spans, at = [], 0
    for entry in item.get("words", []):
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            raise _fail(ds, f"{split} item {i}", 'each "words" entry must be ["word", label]', item["text"])
        start = item["text"].find(entry[0], at)
        if start < 0:
            raise _fail(ds, f"{split} item {i}", f"word {entry[0]!r} not found (in order) in the text",
                        item["text"])
        at = start + len(entry[0])
        spans.append((start, at, float(entry[1])))
    return spans


def validate(ds: ConceptDataset) -> ConceptDataset:
    """Check structure, labels, emptiness, duplicates and class balance; raise with file and line."""
    if not isinstance(ds.name, str) or not ds.name:
        raise InterlinguaError(f"{ds.path}: a concept needs a non-empty \"name\".")
    if ds.kind is not None and ds.kind not in KINDS:
        raise InterlinguaError(f"{ds.path}: \"kind\" must be one of {', '.join(KINDS)}, not {ds.kind!r}.")
    unknown = set(ds.items) - set(SPLITS)
    if unknown:
        raise InterlinguaError(f"{ds.path}: unknown split(s) {sorted(unknown)}; use {', '.join(SPLITS)}.")
    if not ds.items.get("train"):
        raise InterlinguaError(f"{ds.path}: the concept has no \"train\" examples.")
    seen: dict[str, str] = {}
    for split, items in ds.items.items():
        if not isinstance(items, list):
            raise InterlinguaError(f"{ds.path}: split \"{split}\" must be a list of examples.")
        for i, item in enumerate(items):
            where = f"{split} item {i}"
            if not isinstance(item, dict):
                raise _fail(ds, where, "each example must be an object")
            if "positive" in item or "negative" in item:
                texts = [item.get("positive"), item.get("negative")]
                extra = set(item) - PAIR_KEYS
                if extra:
                    raise _fail(ds, where, 'a pair has only "positive", "negative" and optionally "template", '
                                f"not {sorted(extra)}", _first_text(item))
            elif "text" in item:
                texts = [item.get("text")]
                extra = set(item) - TEXT_KEYS
                if extra:
                    raise _fail(ds, where, 'a labelled text has only "text", "label" and optionally "words" and '
                                f'"template", not {sorted(extra)}', _first_text(item))
                label = item.get("label")
                if isinstance(label, bool) or not isinstance(label, int | float) or not 0 <= label <= 1:
                    raise _fail(ds, where, f"\"label\" must be 0, 1 or a number in [0, 1], not {label!r}",
                                item["text"] if isinstance(item["text"], str) else None)
            else:
                raise _fail(ds, where, 'an example is {"positive": …, "negative": …} or {"text": …, "label": …}')
            if "template" in item and (not isinstance(item["template"], str) or not item["template"].strip()):
                raise _fail(ds, where, f'"template" must be a non-empty string, not {item["template"]!r}',
                            _first_text(item))
            for t in texts:
                if not isinstance(t, str) or not t.strip():
                    raise _fail(ds, where, "empty or missing text", t if isinstance(t, str) else None)
                if t in seen:
                    raise _fail(ds, where, f"duplicate text {t!r} (also in {seen[t]})", t)
                seen[t] = where
    for split in ds.splits:
        data = ds.split(split)
        n_pos, n_neg = data.class_counts("words" if data.words is not None else "last")
        if n_pos == 0 or n_neg == 0:
            cls = "positive" if n_neg == 0 else "negative"
            unit = "labelled words" if data.words is not None else "examples"
            raise InterlinguaError(
                f"{ds.path}: split '{split}' has only {cls} {unit}; a concept needs both classes."
            )
    return ds


def _parse(path: Path) -> tuple[dict, str]:
    raw = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InterlinguaError(f"{path} is YAML; install PyYAML (pip install pyyaml) or use JSON.") from None
        try:
            return yaml.safe_load(raw), raw
        except yaml.YAMLError as exc:
            raise InterlinguaError(f"{path} is not valid YAML: {exc}") from None
    try:
        return json.loads(raw), raw
    except json.JSONDecodeError as exc:
        raise InterlinguaError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}).") from None


def from_dict(obj: dict, path: str = "<memory>", raw_text: str = "") -> ConceptDataset:
    if not isinstance(obj, dict):
        raise InterlinguaError(f"{path}: a concept file holds one JSON object.")
    ds = ConceptDataset(
        name=obj.get("name", ""), description=obj.get("description", ""), kind=obj.get("kind"),
        source=obj.get("source", ""), items={k: v for k, v in obj.items() if k in SPLITS or k not in
                                             ("name", "description", "kind", "source")},
        path=path, raw_text=raw_text,
    )
    return validate(ds)


def library_dir() -> Path:
    return Path(str(files("interlingua.concepts").joinpath("library")))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in library_dir().glob("*.json"))


def load_concept(name_or_path: str | Path) -> ConceptDataset:
    """A built-in concept by name, or a concept file by path."""
    path = Path(name_or_path)
    if path.suffix in (".json", ".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InterlinguaError(f"concept file {path} does not exist.")
    else:
        path = library_dir() / f"{name_or_path}.json"
        if not path.is_file():
            names = builtin_names()
            close = difflib.get_close_matches(str(name_or_path), names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InterlinguaError(
                f"unknown concept '{name_or_path}'.{hint} Built-in concepts: {', '.join(names)} "
                "(see `interlingua concept list`), or give the path of a concept file."
            )
    obj, raw = _parse(path)
    return from_dict(obj, str(path), raw)


def list_concepts() -> list[ConceptDataset]:
    return [load_concept(n) for n in builtin_names()]
