"""End-to-end checks on the two bundled real models (slow: they load real weights)."""

import contextlib

import pytest
import torch

from interlingua.activations import extract
from interlingua.data import load_corpus, sample_texts
from interlingua.models import BUNDLED, auto_dtype, cache_dir, capturing, load_model, load_tokenizer

pytestmark = pytest.mark.slow
NAMES = list(BUNDLED)


@pytest.fixture(scope="module", params=NAMES)
def real(request):
    return load_model(request.param)  # dtype auto: bfloat16 only where this machine runs it natively


@contextlib.contextmanager
def in_dtype(model, dtype: torch.dtype):
    """``model`` cast to ``dtype`` for a block, then back to the dtype it was loaded in."""
    before = model.dtype
    model.model.to(dtype)
    try:
        yield model
    finally:
        model.model.to(before)


def test_describes_itself_as_registered(real):
    spec = BUNDLED[real.name]
    assert (real.n_layers, real.d_model, real.vocab_size) == (spec.n_layers, spec.d_model, spec.vocab_size)
    cached = list((cache_dir() / "models").glob(f"{real.name}-v*"))[0]
    files = {p.suffix for p in cached.iterdir()}
    assert ".safetensors" in files and not files & {".bin", ".pt", ".pkl"}


def test_extraction_equals_output_hidden_states(real):
    with in_dtype(real, torch.float32):  # the 1e-4 tolerance is float32's, whatever auto picked
        _check_extraction_equals_output_hidden_states(real)


def _check_extraction_equals_output_hidden_states(real):
    texts = load_corpus("test", max_docs=3) + ["Numbers 12,345 and émigré 😀."]
    n = real.n_layers
    layers = [0, n // 2, n - 2]
    acts = extract(real, texts, [f"resid_post.{i}" for i in layers] + [f"resid_post.{n - 1}"], max_tokens=128)
    early = extract(real, texts, f"resid_post.{n // 2}", max_tokens=128)
    for d, text in enumerate(texts):
        enc = real.tokenizer([text], return_tensors="pt", truncation=True, max_length=128)
        with torch.inference_mode():
            hs = real.model(**enc, output_hidden_states=True).hidden_states
        rows = acts.doc == d
        for i in layers:
            ref = hs[i + 1][0]
            assert (acts[f"resid_post.{i}"][rows] - ref).norm() / ref.norm() < 1e-4
        final = real.model.base_model.norm(acts[f"resid_post.{n - 1}"][rows])
        assert (final - hs[-1][0]).norm() / hs[-1][0].norm() < 1e-4
    assert torch.equal(early[f"resid_post.{n // 2}"], acts[f"resid_post.{n // 2}"])  # stopping early changes nothing


def test_sublayer_hooks_add_up(real):
    enc = real.tokenizer(["The cat sat on the mat because it was warm."], return_tensors="pt")
    i = real.n_layers // 2
    points = [real.hook(f"{k}.{i}") for k in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
    with torch.inference_mode(), in_dtype(real, torch.float32), capturing(real.model, points, stop=False) as s:
        real.model(**enc)
    total = s[f"resid_pre.{i}"] + s[f"attn_out.{i}"] + s[f"mlp_out.{i}"]
    assert (total - s[f"resid_post.{i}"]).norm() / s[f"resid_post.{i}"].norm() < 1e-5


def test_knows_a_capital(real):
    """The dequantised weights are a working model: Paris beats other capitals after the prompt."""
    def logprob(text):
        enc = real.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            logits = real.model(**enc).logits.log_softmax(-1)[0]
        ids = enc.input_ids[0]
        n_prompt = len(real.tokenizer("The capital of France is").input_ids)
        return sum(float(logits[p - 1, ids[p]]) for p in range(n_prompt, len(ids)))

    scores = {c: logprob(f"The capital of France is {c}") for c in ("Paris", "London", "Berlin", "Madrid")}
    assert max(scores, key=scores.get) == "Paris", scores


@pytest.mark.skipif(auto_dtype().dtype != torch.bfloat16,
                    reason=f"bfloat16 is not this machine's auto dtype ({auto_dtype().reason})")
def test_bfloat16_error_is_small(real):
    """The bf16 error we accept, measured where auto picks bf16: relative L2 at the middle residual stream.

    Skipped where bf16 is emulated (there it is ~90x slower and only used when asked for)."""
    texts = load_corpus("test", max_docs=4)
    hook = f"resid_post.{real.n_layers // 2}"
    with in_dtype(real, torch.float32):
        ref = extract(real, texts, hook, skip_first=1, max_tokens=96)[hook]
    with in_dtype(real, torch.bfloat16):
        low = extract(real, texts, hook, skip_first=1, max_tokens=96)[hook].float()
    rel = float((low - ref).norm() / ref.norm())
    print(f"{real.name} bf16 relative error at {hook}: {rel:.4f}")
    assert rel < 0.1


def test_sampler_generates_english(real):
    texts = sample_texts(real, 2, max_new_tokens=12, seed=0)
    assert texts == sample_texts(real, 2, max_new_tokens=12, seed=0)
    assert all(len(t.split()) >= 5 for t in texts)


def test_corpus_has_a_million_tokens():
    docs = load_corpus()
    for name in NAMES:
        tok = load_tokenizer(name)
        n = sum(len(x) for x in tok(docs, add_special_tokens=False).input_ids)
        assert n > 1_000_000, (name, n)
