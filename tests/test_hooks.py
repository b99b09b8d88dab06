"""Hook points: names, validation, placement on both architectures, and cleanup."""

import pytest
import torch

from interlingua.errors import UnknownHookError
from interlingua.models import capturing, hooked, stopping
from interlingua.models.hooks import find_layers


def _inputs(model, text="The quick brown fox jumps over the lazy dog."):
    return model.tokenizer([text], return_tensors="pt")


def test_hook_names_cover_every_block(tiny):
    names = tiny.hook_points
    assert len(names) == 4 * tiny.n_layers
    assert {"resid_pre.0", "attn_out.2", "mlp_out.3", "resid_post.3"} <= set(names)


@pytest.mark.parametrize("bad", ["resid_post.4", "resid_mid.1", "resid_post", "blocks.1.hook_resid_post", "resid_post.-5"])
def test_unknown_hook_lists_valid_names(llama, bad):
    with pytest.raises(UnknownHookError) as err:
        llama.hook(bad)
    msg = str(err.value)
    assert bad in msg and "resid_post.0 … resid_post.3" in msg and "attn_out.0" in msg


def test_negative_layer_counts_from_end(llama):
    assert llama.hook("resid_post.-1").name == "resid_post.3"


def test_resid_post_is_resid_pre_plus_sublayers(tiny):
    """The four hook points mean the same thing on Llama and on Gemma's sandwich-norm blocks."""
    points = [tiny.hook(f"{k}.{i}") for i in range(tiny.n_layers) for k in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
    with torch.inference_mode(), capturing(tiny.model, points, stop=False) as store:
        tiny.model(**_inputs(tiny))
    for i in range(tiny.n_layers):
        total = store[f"resid_pre.{i}"] + store[f"attn_out.{i}"] + store[f"mlp_out.{i}"]
        torch.testing.assert_close(total, store[f"resid_post.{i}"], rtol=1e-5, atol=1e-5)
        if i + 1 < tiny.n_layers:
            torch.testing.assert_close(store[f"resid_post.{i}"], store[f"resid_pre.{i + 1}"])
        # the sub-block outputs are not trivially zero or equal to each other
        assert store[f"attn_out.{i}"].abs().mean() > 1e-4 and store[f"mlp_out.{i}"].abs().mean() > 1e-4


def test_resid_matches_output_hidden_states(tiny):
    enc = _inputs(tiny)
    with torch.inference_mode():
        hs = tiny.model(**enc, output_hidden_states=True).hidden_states
        points = [tiny.hook(f"resid_post.{i}") for i in range(tiny.n_layers)] + [tiny.hook("resid_pre.0")]
        with capturing(tiny.model, points, stop=False) as store:
            tiny.model(**enc)
    torch.testing.assert_close(store["resid_pre.0"], hs[0])
    for i in range(tiny.n_layers - 1):
        torch.testing.assert_close(store[f"resid_post.{i}"], hs[i + 1])
    # transformers applies the final norm to its last hidden state; we do not
    final_norm = tiny.model.base_model.norm
    torch.testing.assert_close(final_norm(store[f"resid_post.{tiny.n_layers - 1}"]), hs[-1])


def test_stop_early_skips_later_blocks(tiny):
    calls = []
    layers = find_layers(tiny.model)
    handles = [layer.register_forward_hook(lambda m, a, o, i=i: calls.append(i)) for i, layer in enumerate(layers)]
    try:
        with torch.inference_mode(), capturing(tiny.model, [tiny.hook("mlp_out.1")]) as store, stopping():
            tiny.model(**_inputs(tiny))
    finally:
        for h in handles:
            h.remove()
    assert calls == [0]  # block 1 raised after its MLP, so its own forward hook never ran
    assert "mlp_out.1" in store


def test_hooks_removed_after_error(tiny):
    def boom(x):
        raise ValueError("boom")

    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tiny.model.modules())
    with pytest.raises(ValueError):
        with hooked(tiny.model, {tiny.hook("resid_pre.1"): boom, tiny.hook("attn_out.2"): boom}):
            tiny.model(**_inputs(tiny))
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tiny.model.modules())
    assert after == before


def test_hook_can_replace_activation(tiny):
    enc = _inputs(tiny)
    with torch.inference_mode():
        clean = tiny.model(**enc).logits
        with hooked(tiny.model, {tiny.hook("resid_pre.2"): lambda x: x * 0}):
            edited = tiny.model(**enc).logits
        # zeroing the stream entering block 2 is the same as zeroing resid_post.1
        with hooked(tiny.model, {tiny.hook("resid_post.1"): lambda x: x * 0}):
            edited2 = tiny.model(**enc).logits
    assert not torch.allclose(clean, edited)
    torch.testing.assert_close(edited, edited2)
