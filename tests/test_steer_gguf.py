"""GGUF control vectors: bit-exact round trip, llama.cpp's schema and layer convention, errors."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch

from interlingua.errors import InterlinguaError
from interlingua.models.hooks import find_layers
from interlingua.steer import ablate, add, steering
from interlingua.steer.gguf import ControlVector, layer_of_hook
from interlingua.steer.interventions import bind


pytestmark = pytest.mark.usefixtures("one_thread")


def _awkward(width: int, seed: int) -> torch.Tensor:
    """Values that a lossy round trip would change: subnormals, -0.0, huge and tiny magnitudes."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(width, generator=g) * 10.0 ** torch.randint(-30, 30, (width,), generator=g).float()
    v[:4] = torch.tensor([-0.0, 1e-45, -3.4e38, 1.0000001])
    return v.float()


def test_round_trip_is_bit_exact(tmp_path):
    cv = ControlVector({1: _awkward(64, 0), 3: _awkward(64, 1), 17: _awkward(64, 2)}, model_hint="llama",
                       metadata={"interlingua.note": "héllo", "interlingua.count": 3, "interlingua.ratio": 0.25})
    path = cv.save(tmp_path / "v.gguf")
    back = ControlVector.load(path)
    assert sorted(back.directions) == [1, 3, 17]
    for k, v in cv.directions.items():
        assert back.directions[k].dtype == torch.float32
        assert torch.equal(back.directions[k].view(torch.int32), v.view(torch.int32))  # bit for bit, -0.0 included
    assert back.model_hint == "llama"
    assert back.metadata == {"interlingua.note": "héllo", "interlingua.count": 3, "interlingua.ratio": 0.25}
    # saving what was loaded gives the same bytes
    again = back.save(tmp_path / "again.gguf")
    assert again.read_bytes() == path.read_bytes()


def test_file_follows_llama_cpp_schema(tmp_path):
    path = ControlVector({2: torch.ones(8), 5: torch.arange(8.0)}, model_hint="gemma3_text").save(tmp_path / "v.gguf")
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.architecture"].contents() == "controlvector"
    assert r.fields["controlvector.model_hint"].contents() == "gemma3_text"
    assert r.fields["controlvector.layer_count"].contents() == 2
    names = [t.name for t in r.tensors]
    assert names == ["direction.2", "direction.5"] and "direction.0" not in names
    for t in r.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [8]
    np.testing.assert_array_equal(r.tensors[1].data, np.arange(8, dtype=np.float32))


def test_layer_convention(llama):
    assert layer_of_hook(llama, "resid_post.2") == 2
    assert layer_of_hook(llama, "resid_pre.3") == 2  # resid_pre.3 is resid_post.2
    for bad, text in (("resid_post.0", "block 0"), ("resid_pre.1", "block 0"), ("resid_pre.0", "block 0"),
                      ("attn_out.2", "inside a block"), ("mlp_out.1", "inside a block")):
        with pytest.raises(InterlinguaError, match=text):
            layer_of_hook(llama, bad)


def test_direction_k_is_added_to_the_output_of_block_k(tiny, tmp_path):
    """What llama.cpp does with direction.k (add to block k's output, every token) is what the file steers here."""
    g = torch.Generator().manual_seed(0)
    vecs = {1: torch.randn(tiny.d_model, generator=g), 3: torch.randn(tiny.d_model, generator=g)}
    cv = ControlVector.load(ControlVector(vecs).save(tmp_path / "v.gguf"))
    enc = tiny.tokenizer(["The quick brown fox jumps."], return_tensors="pt")
    handles = []
    for k, v in vecs.items():
        def hook(module, args, output, v=v):
            return (output[0] + 0.5 * v, *output[1:]) if isinstance(output, tuple) else output + 0.5 * v
        handles.append(find_layers(tiny.model)[k].register_forward_hook(hook))
    try:
        with torch.inference_mode():
            want = tiny.model(**enc).logits
    finally:
        for h in handles:
            h.remove()
    with torch.inference_mode(), steering(tiny, cv.interventions(tiny, strength=0.5)):
        got = tiny.model(**enc).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_export_interventions_then_steer_with_the_file(llama, tmp_path):
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.randn(llama.d_model, generator=g), torch.randn(llama.d_model, generator=g)
    ivs = [add(v1, 0.7, hook="resid_post.2", typical_norm=5.0), add(v2, 2.0, hook="resid_pre.2", scale="absolute"),
           add(v1, 1.0, hook="resid_post.1", scale="raw")]
    cv = ControlVector.from_interventions(llama, ivs)
    assert sorted(cv.directions) == [1, 2]
    torch.testing.assert_close(cv.directions[2], bind(llama, ivs[0]).delta)
    torch.testing.assert_close(cv.directions[1], bind(llama, ivs[1]).delta + v1)
    assert abs(float(cv.directions[2].norm()) - 3.5) < 1e-4  # 0.7 × typical norm 5
    back = ControlVector.load(cv.save(tmp_path / "v.gguf"))
    assert back.model_hint == "llama" and back.metadata["interlingua.model"] == llama.name
    enc = llama.tokenizer(["It was a truth universally acknowledged."], return_tensors="pt")
    with torch.inference_mode():
        with steering(llama, ivs):
            want = llama.model(**enc).logits
        with steering(llama, back.interventions(llama)):
            got = llama.model(**enc).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_export_refuses_what_llama_cpp_cannot_do(llama):
    v = torch.randn(llama.d_model)
    for iv, text in ((ablate(v, hook="resid_post.2"), "additive"),
                     (add(v, 1.0, hook="resid_post.2", positions="generated"), "every token"),
                     (add(v, 1.0, hook="resid_post.2", tokens=[0]), "every token"),
                     (add(v, 1.0, hook="attn_out.2"), "inside a block"),
                     (add(v, 1.0, hook="resid_post.0"), "block 0"),
                     (add(v, float("nan"), hook="resid_post.2"), "finite")):
        with pytest.raises(InterlinguaError, match=text):
            ControlVector.from_interventions(llama, iv)


def _write(path, arch="controlvector", tensors=None):
    w = gguf.GGUFWriter(str(path), arch)
    for name, arr in (tensors or {}).items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_load_rejects_bad_files(tmp_path, llama):
    f32 = np.ones(64, dtype=np.float32)
    cases = [
        (_write(tmp_path / "zero.gguf", tensors={"direction.0": f32}), "direction.0"),
        (_write(tmp_path / "arch.gguf", arch="llama", tensors={"direction.1": f32}), "not a control vector"),
        (_write(tmp_path / "f16.gguf", tensors={"direction.1": f32.astype(np.float16)}), "F32"),
        (_write(tmp_path / "name.gguf", tensors={"token_embd.weight": f32}), "unexpected tensor"),
        (_write(tmp_path / "empty.gguf"), "at least one layer"),
        (_write(tmp_path / "mixed.gguf", tensors={"direction.1": f32, "direction.2": np.ones(8, dtype=np.float32)}),
         "one width"),
        (tmp_path / "missing.gguf", "does not exist"),
    ]
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    cases.append((tmp_path / "junk.gguf", "not a readable GGUF"))
    for path, text in cases:
        with pytest.raises(InterlinguaError, match=text):
            ControlVector.load(path)
    wide = ControlVector.load(_write(tmp_path / "wide.gguf", tensors={"direction.1": np.ones(65, dtype=np.float32)}))
    with pytest.raises(InterlinguaError, match="width 65"):
        wide.interventions(llama)
    deep = ControlVector.load(_write(tmp_path / "deep.gguf", tensors={"direction.4": f32}))
    with pytest.raises(InterlinguaError, match="only 4 blocks"):
        deep.interventions(llama)


# ---- the strength an export is stored at ----------------------------------------------------


def _sweep(cells, unsteered_ppl=10.0, hook="resid_post.2"):
    """A sweep result with one judge: ``cells`` are (strength, effect, random effect, perplexity)."""
    from interlingua.steer.evaluate import SweepResult

    rows = [{"condition": "unsteered", "effect": {"j": 0.0}, "perplexity": unsteered_ppl}]
    for s, effect, rnd, ppl in cells:
        rows.append({"condition": "steer", "hook": hook, "strength": s, "effect": {"j": effect}, "perplexity": ppl})
        rows.append({"condition": "random", "hook": hook, "strength": s, "effect": {"j": rnd}, "perplexity": ppl})
    return SweepResult(rows=rows, judges=[{"name": "j"}], settings={})


def test_export_strength_is_the_weakest_that_steers_and_stays_coherent():
    from interlingua.steer.evaluate import choose_strength

    # as the probe found on SmolLM2: 1.0 × typical norm wrecks the text (the detector turns against the concept)
    probe_like = _sweep([(0.25, 0.30, 0.10, 12.0), (0.5, 0.50, 0.10, 20.0), (1.0, -0.80, 0.20, 60.0)])
    chosen = choose_strength(probe_like, "resid_post.2")
    assert chosen["strength"] == 0.25 and chosen["effective"] and chosen["coherent"]
    assert [c["strength"] for c in chosen["cells"]] == [0.25, 0.5, 1.0]
    assert [(c["effective"], c["coherent"]) for c in chosen["cells"]] == [(True, True), (True, True), (False, False)]
    # too weak to beat the random vector at 0.25: the next one
    assert choose_strength(_sweep([(0.25, 0.05, 0.10, 11.0), (0.5, 0.4, 0.1, 20.0)]), "resid_post.2")["strength"] == 0.5
    # steering away: the effect counts in the strength's direction
    assert choose_strength(_sweep([(-0.5, -0.3, 0.1, 12.0)]), "resid_post.2")["strength"] == -0.5


def test_no_strength_that_is_both_effective_and_coherent_is_a_clear_error():
    from interlingua.steer.evaluate import choose_strength

    with pytest.raises(InterlinguaError, match=r"no strength at resid_post.2 both steered .* 0.25: effect 0.050"):
        choose_strength(_sweep([(0.25, 0.05, 0.10, 11.0), (1.0, 0.9, 0.1, 40.0)]), "resid_post.2")


def test_the_file_records_its_strength_and_the_llama_cpp_command(tiny, tmp_path):
    from interlingua.steer.gguf import strength_metadata

    v = torch.randn(tiny.d_model)
    cells = [{"strength": 0.25, "effect": 0.3, "random_effect": 0.1, "perplexity": 12.0, "effective": True,
              "coherent": True}]
    meta = strength_metadata("sent.gguf", "resid_post.2", 0.25, 3.5, "the weakest that steers", cells)
    cv = ControlVector.from_interventions(tiny, add(v, 0.25, hook="resid_post.2", typical_norm=3.5), **meta)
    back = ControlVector.load(cv.save(tmp_path / "sent.gguf"))
    assert back.metadata["interlingua.strength"] == 0.25 and back.metadata["interlingua.typical_norm"] == 3.5
    assert back.metadata["interlingua.hook"] == "resid_post.2"
    assert json.loads(back.metadata["interlingua.sweep"]) == cells
    assert "llama-completion -m MODEL.gguf --control-vector sent.gguf" in back.metadata["interlingua.llama_cpp"]
    assert float(back.directions[2].norm()) == pytest.approx(0.25 * 3.5, rel=1e-5)  # stored at that strength
