"""The bundled corpus and the seeded sampler."""

import pytest

from interlingua.data import BOOKS, corpus_info, load_corpus, sample_texts
from interlingua.errors import InterlinguaError


def test_corpus_is_large_natural_english_with_licence():
    info = corpus_info()
    assert len(info["books"]) == len(BOOKS) == 7
    assert sum(b["words"] for b in info["books"]) > 900_000  # ≈ 1.3 M tokens in both tokenizers
    assert "public domain" in info["licence"]
    docs = load_corpus()
    assert any("It is a truth universally acknowledged" in d for d in docs)
    assert all(d.strip() == d and d for d in docs)
    assert "Project Gutenberg-tm" not in " ".join(docs)


def test_splits_are_fixed_and_disjoint():
    train, test, all_ = load_corpus("train"), load_corpus("test"), load_corpus("all")
    assert len(train) + len(test) == len(all_)
    assert test == all_[9::10] and train == [d for i, d in enumerate(all_) if i % 10 != 9]
    assert load_corpus("test") == test and load_corpus("test", max_docs=5) == test[:5]


def test_documents_merge_short_paragraphs():
    docs = load_corpus(books=("austen_emma",), doc_chars=1500)
    assert max(len(d) for d in docs) < 20_000
    assert sum(len(d) > 300 for d in docs) > len(docs) / 2


def test_bad_split():
    with pytest.raises(InterlinguaError, match="train"):
        load_corpus("dev")


def test_sampler_is_seeded(llama):
    a = sample_texts(llama, 3, max_new_tokens=8, seed=1)
    b = sample_texts(llama, 3, max_new_tokens=8, seed=1)
    c = sample_texts(llama, 3, max_new_tokens=8, seed=2)
    assert a == b and a != c and len(a) == 3
    with_prompt = sample_texts(llama, 2, prompts=["Once upon"], max_new_tokens=5, seed=0)
    assert all(t.startswith("Once upon") and len(t) > len("Once upon") for t in with_prompt)


def test_sampler_restores_padding_side(gemma):
    gemma.tokenizer.padding_side = "right"
    sample_texts(gemma, 2, max_new_tokens=4)
    assert gemma.tokenizer.padding_side == "right"
