"""Interventions: same result as hand-written hooks, padding/batch/KV-cache correctness, cleanup, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from interlingua.errors import InterlinguaError, UnknownHookError
from interlingua.models import LoadedModel, capturing
from interlingua.models.hooks import find_layers
from interlingua.steer import ablate, add, clamp, custom, generate, steering
from interlingua.steer.generate import left_pad

pytestmark = pytest.mark.usefixtures("one_thread")


PROMPTS = ["The quick brown fox", "Elinor was nineteen; Marianne", "short", "Numbers 1234 and 3.14, emoji",
           "It was a truth universally", "She said", "Captain Wentworth had no fortune", "A"]


@pytest.fixture(params=["llama", "gemma"])
def tiny64(request) -> LoadedModel:
    """A float64 copy of each tiny model: padding and batching then change logits by ~1e-15, so greedy
    tokens compared across paddings and batch sizes cannot flip on a float32 near-tie."""
    base = request.getfixturevalue(request.param)
    return LoadedModel.from_pretrained_objects(copy.deepcopy(base.model).double(), base.tokenizer,
                                               name=base.name + "-f64")


def _vec(model, seed=0, norm=3.0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(model.d_model, generator=g)
    return v / v.norm() * norm


def _hooks(model) -> list[tuple[int, ...]]:
    """Every forward (pre-)hook id on the model. Compared before/after, not against zero: transformers
    itself leaves output-capturing hooks behind once any test asked for ``output_hidden_states``."""
    return [(*m._forward_hooks, -1, *m._forward_pre_hooks) for m in model.model.modules()]


def _hand_hook(model, layer, fn):
    """A plain forward hook on block ``layer``'s output (resid_post), written the obvious way."""
    block = find_layers(model.model)[layer]

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return block.register_forward_hook(hook)


def _logits(model, enc):
    with torch.inference_mode():
        return model.model(**enc).logits


# ---- same output as a plain hand-written hook ------------------------------------------------


def test_add_equals_hand_written_hook_forward_and_generate(tiny):
    before = _hooks(tiny)
    v = _vec(tiny)
    enc = tiny.tokenizer(["The quick brown fox jumps over the lazy dog."], return_tensors="pt")
    h = _hand_hook(tiny, 1, lambda x: x + v.to(x.dtype))
    try:
        want = _logits(tiny, enc)
        want_gen = generate(tiny, PROMPTS[:1], max_new_tokens=6)
    finally:
        h.remove()
    plain = _logits(tiny, enc)
    with steering(tiny, add(v, 1.0, hook="resid_post.1", scale="raw")):
        got = _logits(tiny, enc)
    got_gen = generate(tiny, PROMPTS[:1], interventions=add(v, 1.0, hook="resid_post.1", scale="raw"), max_new_tokens=6)
    assert torch.equal(got, want)
    assert not torch.allclose(got, plain, atol=1e-3)  # the steering did something
    assert got_gen.new_ids == want_gen.new_ids
    assert _hooks(tiny) == before


@pytest.mark.parametrize("kind", ["resid_pre", "attn_out", "mlp_out", "resid_post"])
def test_add_at_every_hook_kind_moves_that_activation_by_exactly_the_vector(tiny, kind):
    v = _vec(tiny, norm=2.0)
    point = tiny.hook(f"{kind}.2")
    enc = tiny.tokenizer(["Elinor was nineteen; Marianne said no."], return_tensors="pt")
    with torch.inference_mode(), capturing(tiny.model, [point], stop=False) as before:
        tiny.model(**enc)
    with torch.inference_mode(), steering(tiny, add(v, 2.0, hook=point.name, scale="absolute")), \
            capturing(tiny.model, [point], stop=False) as after:
        tiny.model(**enc)
    torch.testing.assert_close(after[point.name] - before[point.name], v.expand_as(before[point.name]),
                               rtol=0, atol=1e-5)


def test_ablate_and_clamp_set_the_projection(tiny):
    v = _vec(tiny, seed=3)
    u = v / v.norm()
    point = tiny.hook("resid_post.2")
    enc = tiny.tokenizer(["Captain Wentworth had no fortune."], return_tensors="pt")
    with torch.inference_mode(), steering(tiny, ablate(v, hook=point.name)), \
            capturing(tiny.model, [point], stop=False) as st:
        tiny.model(**enc)
    assert float((st[point.name] @ u).abs().max()) < 1e-5
    with torch.inference_mode(), steering(tiny, clamp(v, 0.25, hook=point.name, typical_norm=8.0)), \
            capturing(tiny.model, [point], stop=False) as st:
        tiny.model(**enc)
    torch.testing.assert_close(st[point.name] @ u, torch.full(st[point.name].shape[:2], 2.0), rtol=0, atol=1e-5)
    # the orthogonal complement is untouched by the clamp
    with torch.inference_mode(), capturing(tiny.model, [point], stop=False) as plain:
        tiny.model(**enc)
    perp = lambda x: x - (x @ u).unsqueeze(-1) * u  # noqa: E731
    torch.testing.assert_close(perp(st[point.name]), perp(plain[point.name]), rtol=0, atol=1e-5)


def test_relative_strength_uses_the_typical_norm(llama):
    from interlingua.steer.strength import typical_norm

    v = _vec(llama, norm=123.0)  # the norm of the given vector must not matter
    point = llama.hook("resid_post.1")
    enc = llama.tokenizer(["She said"], return_tensors="pt")
    tn = typical_norm(llama, point.name)
    assert tn > 0 and typical_norm(llama, point.name) == tn  # memoised

    def delta(iv):
        with torch.inference_mode(), capturing(llama.model, [point], stop=False) as a:
            llama.model(**enc)
        with torch.inference_mode(), steering(llama, iv), capturing(llama.model, [point], stop=False) as b:
            llama.model(**enc)
        return (b[point.name] - a[point.name])[0, -1]

    torch.testing.assert_close(float(delta(add(v, 0.5, hook=point.name)).norm()), 0.5 * tn, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(float(delta(add(v, 0.5, hook=point.name, typical_norm=10.0)).norm()), 5.0,
                               rtol=1e-4, atol=1e-4)


def test_several_interventions_equal_their_hand_written_composition(tiny):
    v1, v2, v3 = _vec(tiny, 1), _vec(tiny, 2), _vec(tiny, 3)
    u3 = v3 / v3.norm()
    enc = tiny.tokenizer(["It was a truth universally acknowledged."], return_tensors="pt")
    hooks = [_hand_hook(tiny, 1, lambda x: x + v1.to(x.dtype)),
             _hand_hook(tiny, 2, lambda x: x - 0.5 * v2.to(x.dtype)),
             _hand_hook(tiny, 2, lambda x: x - (x @ u3).unsqueeze(-1) * u3)]
    try:
        want = _logits(tiny, enc)
    finally:
        for h in hooks:
            h.remove()
    ivs = [add(v1, 1.0, hook="resid_post.1", scale="raw"), add(v2, -0.5, hook="resid_post.2", scale="raw"),
           ablate(v3, hook="resid_post.2")]
    with steering(tiny, ivs):
        got = _logits(tiny, enc)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# ---- padding, batching, generate() with a KV cache --------------------------------------------


def _padded(model, prompts, side):
    rows = [model.tokenizer(p)["input_ids"] for p in prompts]
    if side == "left":
        return left_pad(rows, model.tokenizer.pad_token_id)
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), model.tokenizer.pad_token_id)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_forward_left_vs_right_padding_vs_unbatched(tiny64, positions):
    iv = [add(_vec(tiny64, 5), 4.0, hook="resid_post.1", scale="absolute", positions=positions),
          add(_vec(tiny64, 6), 1.0, hook="mlp_out.2", scale="absolute", positions=positions, tokens=[[0, 2]] * 4)]
    prompts = PROMPTS[:4]
    per_text = {}
    with torch.inference_mode(), steering(tiny64, iv):
        for side in ("left", "right"):
            ids, mask = _padded(tiny64, prompts, side)
            logits = tiny64.model(input_ids=ids, attention_mask=mask).logits
            per_text[side] = [logits[i][mask[i].bool()] for i in range(len(prompts))]
    with torch.inference_mode():
        for i, p in enumerate(prompts):
            single_iv = [add(_vec(tiny64, 5), 4.0, hook="resid_post.1", scale="absolute", positions=positions),
                         add(_vec(tiny64, 6), 1.0, hook="mlp_out.2", scale="absolute", positions=positions,
                             tokens=[0, 2])]
            with steering(tiny64, single_iv):
                alone = tiny64.model(**tiny64.tokenizer([p], return_tensors="pt")).logits[0]
            for side in ("left", "right"):
                # a plain forward does not shift RoPE positions for left padding (generate does): float64
                # rounding of the shifted angles leaves ~1e-8; a wrongly steered position moves logits by >0.1
                torch.testing.assert_close(per_text[side][i], alone, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_generate_same_tokens_for_batch_1_and_8_and_either_padding(tiny64, positions):
    iv = add(_vec(tiny64, 7), 6.0, hook="resid_post.1", scale="absolute", positions=positions)
    plain = generate(tiny64, PROMPTS, max_new_tokens=8, batch_size=8)
    one = generate(tiny64, PROMPTS, interventions=iv, max_new_tokens=8, batch_size=1)
    eight = generate(tiny64, PROMPTS, interventions=iv, max_new_tokens=8, batch_size=8)
    assert one.new_ids == eight.new_ids
    assert one.new_ids != plain.new_ids  # steered
    for side in ("left", "right"):
        ids, mask = _padded(tiny64, PROMPTS, side)
        padded = generate(tiny64, input_ids=ids, attention_mask=mask, interventions=iv, max_new_tokens=8)
        assert padded.new_ids == one.new_ids, side


def test_user_generate_inside_steering_matches_library_generate(tiny64):
    iv = add(_vec(tiny64, 8), 6.0, hook="resid_post.2", scale="absolute", positions="generated")
    ids, mask = _padded(tiny64, PROMPTS, "left")
    with torch.inference_mode(), steering(tiny64, iv):
        out = tiny64.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False,
                                    pad_token_id=tiny64.tokenizer.pad_token_id)
    ours = generate(tiny64, PROMPTS, interventions=iv, max_new_tokens=5)
    theirs = [r[ids.shape[1]:].tolist() for r in out]
    for a, b in zip(ours.new_ids, theirs):
        assert b[:len(a)] == a


@pytest.mark.parametrize("batch_size", [3, 1])
@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_positions_touched_during_generate(tiny, positions, batch_size):
    """Every selected position is steered exactly once, under its own token index. batch_size=1 has no
    padding, so transformers 5 generate() drops the (all-ones) attention mask and the hook must read the KV
    cache, passed as ``cache`` since transformers 5, to place the decoding steps."""
    prompts = PROMPTS[:3]
    seen: list[list[int]] = [[] for _ in prompts]
    row0 = [0]  # the first prompt of the current batch

    def record(x, active, step):
        if step.past == 0 and step.real.shape[1] > 1:
            row0[0] = record.batches * batch_size
            record.batches += 1
        for r, i in zip(*torch.nonzero(active, as_tuple=True)):
            seen[row0[0] + int(r)].append(int(step.token_index[r, i]))
        return x

    record.batches = 0
    n_new = 4
    gen = generate(tiny, prompts, interventions=custom("resid_post.0", record, positions=positions),
                   max_new_tokens=n_new, batch_size=batch_size)
    assert record.batches == -(-len(prompts) // batch_size)
    for r in range(3):
        p = len(gen.prompt_ids[r])
        total = p + n_new - 1  # the last generated token is never fed back
        want = {"all": range(total), "prompt": range(p), "generated": range(p - 1, total)}[positions]
        assert sorted(seen[r]) == list(want), (r, positions)


def _cache_of(out):
    """The KV cache a forward returned (``cache`` since transformers 5, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_hand_written_decoding_without_attention_mask(tiny64, positions):
    """A decoding loop without attention_mask (what transformers 5 generate() runs for an unpadded batch):
    the KV cache, under whatever name the model's forward takes it, tells which calls continue the prompt."""
    import inspect

    names = inspect.signature(tiny64.model.forward).parameters
    name = "cache" if "cache" in names else "past_key_values"
    seen: list[tuple[int, int]] = []

    def record(x, active, step):
        seen.extend((step.past, int(step.token_index[0, i])) for i in torch.nonzero(active[0]).flatten())
        return x

    ids = torch.tensor([tiny64.tokenizer(PROMPTS[1])["input_ids"]])
    p, n_new = ids.shape[1], 3
    with torch.inference_mode(), steering(tiny64, custom("resid_post.1", record, positions=positions)) as tracker:
        out = tiny64.model(input_ids=ids, use_cache=True)
        for k in range(n_new):
            nxt = out.logits[:, -1:].argmax(-1)
            out = tiny64.model(input_ids=nxt, use_cache=True, **{name: _cache_of(out)})
            assert tracker.step.past == p + k and tracker.step.token_index.tolist() == [[p + k]]
            assert tracker.step.prompt_len.tolist() == [p]
    want = [(0, i) for i in range(p)] if positions == "prompt" else \
        [(0, p - 1)] + [(p + k, p + k) for k in range(n_new)]
    assert seen == want


def test_first_generated_token_is_steered(tiny64):
    """Steering 'generated' positions changes the logits that produce the first new token, and they equal a
    forward pass in which only the prompt's last token is steered."""
    v = _vec(tiny64, 9)
    iv_gen = add(v, 5.0, hook="resid_post.1", scale="absolute", positions="generated")
    tokens, probe = [], tiny64.tokenizer(PROMPTS[:2])["input_ids"]
    for ids in probe:
        tokens.append([len(ids) - 1])
    gen = generate(tiny64, PROMPTS[:2], interventions=iv_gen, max_new_tokens=1, token_sets=None)
    ids, mask = _padded(tiny64, PROMPTS[:2], "left")
    with torch.inference_mode(), steering(tiny64, add(v, 5.0, hook="resid_post.1", scale="absolute", tokens=tokens)):
        last = tiny64.model(input_ids=ids, attention_mask=mask).logits[:, -1]
    with torch.inference_mode():
        last_plain = tiny64.model(input_ids=ids, attention_mask=mask).logits[:, -1]
    assert [r[0] for r in gen.new_ids] == last.argmax(-1).tolist()
    assert not torch.allclose(last, last_plain)
    # with positions='generated' on the first step exactly one position per row (the last) was steered
    with torch.inference_mode(), steering(tiny64, iv_gen):
        again = tiny64.model(input_ids=ids, attention_mask=mask).logits[:, -1]
    torch.testing.assert_close(again, last, rtol=0, atol=0)


def test_prompt_only_steering_reaches_generated_tokens_through_the_cache(tiny64):
    v = _vec(tiny64, 10)
    prompts = PROMPTS[:7]  # more than one token each: the hand-written hook tells the prefill by seq > 1
    prompt_only = generate(tiny64, prompts, interventions=add(v, 6.0, hook="resid_post.1", scale="absolute",
                                                              positions="prompt"), max_new_tokens=6)
    # the same as a hand-written hook that adds only while the prompt is processed (the prefill call, seq > 1)
    h = _hand_hook(tiny64, 1, lambda x: x + v.to(x.dtype) * 2.0 if x.shape[1] > 1 else x)
    try:
        want = generate(tiny64, prompts, max_new_tokens=6, batch_size=1)
    finally:
        h.remove()
    assert prompt_only.new_ids == want.new_ids


def test_per_token_mask_is_padding_free(tiny64):
    seen_left, seen_right = [], []

    def recorder(store):
        def fn(x, active, step):
            store.append(sorted((int(r), int(step.token_index[r, i])) for r, i in zip(*torch.nonzero(active, as_tuple=True))))
            return x
        return fn

    mask = [[1, 3], [0], [2, 3, 4]]
    for side, store in (("left", seen_left), ("right", seen_right)):
        ids, am = _padded(tiny64, PROMPTS[:3], side)
        with torch.inference_mode(), steering(tiny64, custom("resid_post.1", recorder(store), tokens=mask)):
            tiny64.model(input_ids=ids, attention_mask=am)
    lengths = [len(x) for x in tiny64.tokenizer(PROMPTS[:3])["input_ids"]]
    want = sorted((r, i) for r, idx in enumerate(mask) for i in idx if i < lengths[r])
    assert seen_left == seen_right == [want]


# ---- cleanup and errors -----------------------------------------------------------------------


def test_hooks_removed_even_on_error(tiny):
    before = _hooks(tiny)
    enc = tiny.tokenizer(["She said"], return_tensors="pt")
    plain = _logits(tiny, enc)
    with pytest.raises(RuntimeError, match="boom"):
        with steering(tiny, [add(_vec(tiny), 1.0, hook="resid_post.0", scale="raw"), ablate(_vec(tiny, 1), hook="mlp_out.1")]):
            raise RuntimeError("boom")
    assert _hooks(tiny) == before
    with pytest.raises(ValueError):
        with steering(tiny, custom("resid_post.1", lambda x, a, s: (_ for _ in ()).throw(ValueError("in hook")))):
            _logits(tiny, enc)
    assert _hooks(tiny) == before
    assert torch.equal(_logits(tiny, enc), plain)


def test_bad_input_gives_clear_errors(llama):
    before = _hooks(llama)
    v = _vec(llama)
    cases = [
        (add(torch.randn(llama.d_model + 1), 1.0, hook="resid_post.1"), InterlinguaError, "width 64"),
        (add(v, 1.0, hook="resid_post.9"), UnknownHookError, "resid_post.0 … resid_post.3"),
        (add(v, 1.0, hook="resid_mid.1"), UnknownHookError, "Valid hook points"),
        (add(v, float("nan"), hook="resid_post.1"), InterlinguaError, "finite"),
        (add(v, float("inf"), hook="resid_post.1"), InterlinguaError, "finite"),
        (clamp(v, float("nan"), hook="resid_post.1"), InterlinguaError, "finite"),
        (add(torch.zeros(llama.d_model), 1.0, hook="resid_post.1"), InterlinguaError, "zero vector"),
        (add(torch.full((llama.d_model,), float("nan")), 1.0, hook="resid_post.1"), InterlinguaError, "NaN"),
        (add(v, 1.0, hook="resid_post.1", positions="later"), InterlinguaError, "positions"),
        (add(v, 1.0, hook="resid_post.1", scale="huge"), InterlinguaError, "scale"),
        (add(v, 1.0, hook="resid_post.1", typical_norm=float("nan")), InterlinguaError, "typical norm"),
    ]
    for iv, exc, text in cases:
        with pytest.raises(exc, match=text):
            with steering(llama, [add(v, 1.0, hook="resid_post.0"), iv]):
                pass
        assert _hooks(llama) == before  # validated before anything was attached
    with pytest.raises(InterlinguaError, match="hook="):
        add(v, 1.0)
    with pytest.raises(InterlinguaError, match="raw"):
        clamp(v, 1.0, hook="resid_post.1", scale="raw")
    with pytest.raises(InterlinguaError, match="rows"):
        with steering(llama, add(v, 1.0, hook="resid_post.1", tokens=[[0], [1]])):
            _logits(llama, llama.tokenizer(["a b c"], return_tensors="pt"))
    with pytest.raises(InterlinguaError, match="negative"):
        add(v, 1.0, hook="resid_post.1", tokens=[[-1]])
    with pytest.raises(InterlinguaError, match="Intervention"):
        with steering(llama, [v]):
            pass


def test_concept_target_uses_its_hook_direction_and_typical_norm(llama):
    from interlingua.concepts import Concept

    w = _vec(llama, 11, norm=7.0)
    c = Concept(name="c", model_name=llama.name, hook="resid_post.2", method="diff_of_means", weight=w, bias=0.0,
                mean=torch.zeros(llama.d_model), std=torch.ones(llama.d_model), typical_norm=4.0)
    iv = add(c, 0.5)
    assert iv.hook == "resid_post.2" and iv.typical_norm == 4.0 and iv.label == "c"
    point = llama.hook("resid_post.2")
    enc = llama.tokenizer(["She said"], return_tensors="pt")
    with torch.inference_mode(), capturing(llama.model, [point], stop=False) as a:
        llama.model(**enc)
    with torch.inference_mode(), steering(llama, iv), capturing(llama.model, [point], stop=False) as b:
        llama.model(**enc)
    torch.testing.assert_close(b[point.name] - a[point.name], (2.0 * w / w.norm()).expand_as(a[point.name]),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_generate_without_a_cache_steers_the_same_positions(tiny64, positions):
    """generate(use_cache=False) re-runs the whole sequence every step; it is still one sequence whose
    prompt is what the first call saw, so it gives the tokens the cached generation gives."""
    iv = add(_vec(tiny64, 12), 6.0, hook="resid_post.1", scale="absolute", positions=positions)
    ids, mask = _padded(tiny64, PROMPTS[:4], "left")
    outs = {}
    for use_cache in (True, False):
        with torch.inference_mode(), steering(tiny64, iv):
            out = tiny64.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False,
                                        use_cache=use_cache, pad_token_id=tiny64.tokenizer.pad_token_id)
        outs[use_cache] = out[:, ids.shape[1]:].tolist()
    assert outs[True] == outs[False]
    plain = generate(tiny64, PROMPTS[:4], max_new_tokens=5)
    assert [r[:len(p)] for r, p in zip(outs[True], plain.new_ids)] != plain.new_ids
