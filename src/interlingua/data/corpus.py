"""The bundled corpus: public-domain English novels shipped inside the package.

Documents are paragraphs (line-wrapping undone), with short neighbouring paragraphs merged
up to ``doc_chars`` characters so that a document gives a model some context. The split
into ``train`` and ``test`` is fixed (every tenth document is ``test``), so held-out
numbers mean the same thing in every run. See ``data/corpus/README.md`` for sources and
licence.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from interlingua.errors import InterlinguaError


@dataclass(frozen=True)
class Book:
    key: str
    title: str
    author: str
    year: int

    @property
    def file(self) -> str:
        return f"{self.key}.txt.gz"


BOOKS: tuple[Book, ...] = (
    Book("austen_sensesensibility", "Sense and Sensibility", "Jane Austen", 1811),
    Book("austen_prideprejudice", "Pride and Prejudice", "Jane Austen", 1813),
    Book("austen_mansfieldpark", "Mansfield Park", "Jane Austen", 1814),
    Book("austen_emma", "Emma", "Jane Austen", 1815),
    Book("austen_northangerabbey", "Northanger Abbey", "Jane Austen", 1817),
    Book("austen_persuasion", "Persuasion", "Jane Austen", 1817),
    Book("melville_mobydick", "Moby-Dick", "Herman Melville", 1851),
)
LICENCE = "public domain texts (Project Gutenberg transcriptions); see interlingua/data/corpus/README.md"
SPLITS = ("all", "train", "test")


@lru_cache(maxsize=None)
def book_text(key: str) -> str:
    """The full text of one bundled book."""
    book = next((b for b in BOOKS if b.key == key), None)
    if book is None:
        raise InterlinguaError(f"no bundled book '{key}'; choose from {', '.join(b.key for b in BOOKS)}.")
    data = files("interlingua.data").joinpath("corpus", book.file).read_bytes()
    return gzip.decompress(data).decode("utf-8")


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs with their line wrapping undone."""
    paras = (re.sub(r"\s*\n\s*", " ", p).strip() for p in re.split(r"\n\s*\n", text))
    return [p for p in paras if p]


def _merge(paras: list[str], doc_chars: int) -> list[str]:
    docs: list[str] = []
    for p in paras:
        if docs and len(docs[-1]) + 1 + len(p) <= doc_chars:
            docs[-1] += "\n" + p
        else:
            docs.append(p)
    return docs


def load_corpus(
    split: str = "all", *, books: tuple[str, ...] | None = None, doc_chars: int = 1500,
    max_docs: int | None = None,
) -> list[str]:
    """Documents of the bundled corpus, in a fixed order.

    ``split`` is ``all``, ``train`` (9 of every 10 documents) or ``test`` (the tenth);
    ``books`` restricts to some book keys; ``doc_chars`` is the size up to which short
    paragraphs are merged (a single long paragraph may exceed it).
    """
    if split not in SPLITS:
        raise InterlinguaError(f"unknown corpus split '{split}'; choose one of {', '.join(SPLITS)}.")
    keys = books or tuple(b.key for b in BOOKS)
    docs = [d for k in keys for d in _merge(paragraphs(book_text(k)), doc_chars)]
    if split == "train":
        docs = [d for i, d in enumerate(docs) if i % 10 != 9]
    elif split == "test":
        docs = [d for i, d in enumerate(docs) if i % 10 == 9]
    return docs[:max_docs] if max_docs is not None else docs


def corpus_info() -> dict:
    """Books, sizes and licence of the bundled corpus."""
    return {
        "licence": LICENCE,
        "books": [
            {"key": b.key, "title": b.title, "author": b.author, "year": b.year,
             "characters": len(book_text(b.key)), "words": len(book_text(b.key).split())}
            for b in BOOKS
        ],
    }
