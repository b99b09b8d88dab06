"""Text stage: the bundled corpus and text sampled from a model."""

from interlingua.data.corpus import BOOKS, corpus_info, load_corpus
from interlingua.data.sampling import sample_texts

__all__ = ["BOOKS", "corpus_info", "load_corpus", "sample_texts"]
