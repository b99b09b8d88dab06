"""Shared fixtures: tiny random Llama and Gemma-3 models with tokenizers trained in-process.

The two tokenizers mirror the two bundled families: a GPT-2 style byte-level BPE (as
SmolLM2) and a SentencePiece-style BPE with "▁" spaces, byte fallback and a BOS token (as
Gemma-3). Training them on a slice of the bundled corpus takes well under a second.
"""

from __future__ import annotations

import functools

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from interlingua.data.corpus import load_corpus
from interlingua.models import LoadedModel

SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Elinor was nineteen; Marianne, café-owner, said “no!”",
    "Numbers 1234 and 3.14, emoji 😀👍 and Ελληνικά, 日本語.",
    "short",
    "  leading spaces and\nnew lines\n\nand tabs\tend",
]


@functools.cache
def _training_text() -> list[str]:
    return load_corpus("train", books=("austen_persuasion",), max_docs=300) + SAMPLE_TEXTS


def byte_level_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A SmolLM2-like byte-level BPE (no BOS, offsets include the leading space)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_text(), trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def sentencepiece_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A Gemma-like BPE: spaces become "▁", unknown characters fall back to bytes, BOS first."""
    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + 256, special_tokens=special + byte_tokens,
                                  show_progress=False)
    # Learn merges within "▁word" units (as SentencePiece does), then tokenize whole strings.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    tok.train_from_iterator(_training_text(), trainer)
    tok.pre_tokenizer = None
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def tiny_llama(tokenizer, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def tiny_gemma3(tokenizer, seed: int = 0) -> Gemma3ForCausalLM:
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                           num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=1,
                           head_dim=16, sliding_window=8, max_position_embeddings=256,
                           pad_token_id=0, bos_token_id=2, eos_token_id=1)
    model = Gemma3ForCausalLM(cfg).eval()
    # Random-init norms are all-zero weights in Gemma (scale = 1 + w); perturb them so that the
    # sandwich norms are not identities and hook placement errors show up.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.3)
    return model


@pytest.fixture(scope="session")
def bpe_tokenizer() -> PreTrainedTokenizerFast:
    return byte_level_tokenizer()


@pytest.fixture(scope="session")
def sp_tokenizer() -> PreTrainedTokenizerFast:
    return sentencepiece_tokenizer()


@pytest.fixture(scope="session")
def llama(bpe_tokenizer) -> LoadedModel:
    return LoadedModel.from_pretrained_objects(tiny_llama(bpe_tokenizer), bpe_tokenizer, name="tiny-llama")


@pytest.fixture(scope="session")
def gemma(sp_tokenizer) -> LoadedModel:
    return LoadedModel.from_pretrained_objects(tiny_gemma3(sp_tokenizer), sp_tokenizer, name="tiny-gemma3")


def _save(model: LoadedModel, path):
    model.model.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory, llama):
    """The tiny llama saved as a local model directory (read-only for tests: it is shared)."""
    return _save(llama, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def gemma_dir(tmp_path_factory, gemma):
    """The tiny Gemma-3 saved as a local model directory (read-only for tests: it is shared)."""
    return _save(gemma, tmp_path_factory.mktemp("tiny-gemma"))


@pytest.fixture(params=["llama", "gemma"])
def tiny(request) -> LoadedModel:
    """Each test using this runs on both tiny architectures."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny-model tests: on a CPU shared with other jobs, a second
    OpenMP thread makes small models many times slower (measured ~15×). Results are compared within
    one setting, so no assertion depends on it. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def kill_instants(tmp_path, monkeypatch):
    """Record what a kill would leave on disk at every instant of a write.

    ``kill_instants(root, write)`` runs ``write()`` and returns copies of the directory ``root``
    taken before and after every rename (``os.rename`` / ``os.replace``, the steps of an atomic
    write) and half way through every ``shutil.rmtree`` (half the files gone): each copy is the
    state a ``kill -9`` at that instant leaves behind, to be read or resumed from. Nothing is
    mocked: every step really happens, the copies only watch.
    """
    import os
    import shutil
    from pathlib import Path

    real_rename, real_replace, real_rmtree = os.rename, os.replace, shutil.rmtree

    def capture(root: Path, write) -> list[Path]:
        shots: list[Path] = []

        def shoot():
            dst = tmp_path / "kill-instants" / f"{len(shots):03d}" / root.name
            shutil.copytree(root, dst, symlinks=True)
            shots.append(dst)

        def watched(real):
            def step(src, dst, *args, **kwargs):
                shoot()
                real(src, dst, *args, **kwargs)
                shoot()
            return step

        def rmtree(path, *args, **kwargs):
            files = sorted(p for p in Path(path).rglob("*") if p.is_file())
            for f in files[: (len(files) + 1) // 2]:
                f.unlink()
            shoot()
            real_rmtree(path, *args, **kwargs)
            shoot()

        with monkeypatch.context() as m:
            m.setattr(os, "rename", watched(real_rename))
            m.setattr(os, "replace", watched(real_replace))
            m.setattr(shutil, "rmtree", rmtree)
            write()
        return shots

    return capture


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A directory nothing can be created in, as on a read-only filesystem.

    Where permissions bind (not root) it is a real ``chmod 555`` directory. As root they do not
    bind, so creating a file or directory under it (``os.mkdir``, ``os.open`` for writing: the
    first step of every write interlingua makes) fails with EROFS instead.
    """
    import errno
    import os
    from pathlib import Path

    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path):
        if Path(os.path.abspath(path)).is_relative_to(ro):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    yield ro


@pytest.fixture
def full_disk(monkeypatch):
    """Every safetensors write fails as on a full disk: with safetensors' own error, which is no OSError."""
    from safetensors import SafetensorError

    import interlingua._io as io

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(io, "save_file", full)


@pytest.fixture
def cli_files(tmp_path):
    """A small text file and a small yes/no concept file, for commands run through the CLI."""
    import json

    yes_no = [{"positive": f"Person {i} said yes.", "negative": f"Person {i} said no."} for i in range(40)]
    texts = tmp_path / "t.txt"
    texts.write_text("\n".join(f"Line {i}: the cat and the dog walked to the river." for i in range(8)) + "\n")
    concept = tmp_path / "yn.json"
    concept.write_text(json.dumps({"name": "yn", "train": yes_no[:24], "test": yes_no[24:34], "ood": yes_no[34:]}))
    return {"texts": str(texts), "concept": str(concept)}


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium WebDriver for the whole session (see tests/browser.py); skips with
    what to install when Debian's chromium/chromium-driver or Selenium is missing."""
    import browser as b

    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip(f"browser tests: selenium is not installed; {b.INSTALL_HINT}")
    found = b.find_browser()
    if isinstance(found, str):
        pytest.skip(f"browser tests: {found}; {b.INSTALL_HINT}")
    driver = b.start_browser(*found)
    try:
        yield driver
    finally:
        driver.quit()
