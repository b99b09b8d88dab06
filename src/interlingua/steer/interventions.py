"""Interventions on a model's activations: add, ablate and clamp a direction, as context managers.

    from interlingua.steer import add, ablate, steering

    with steering(model, add(concept, 0.5)):                 # 0.5 × the hook's typical norm
        out = model.model.generate(**enc, max_new_tokens=32)
    with steering(model, [add(v, 8.0, hook="resid_post.12", scale="absolute", positions="generated"),
                          ablate(other_concept)]):
        ...

An :class:`Intervention` says *what* to do (operation, hook point, direction, strength) and
*where* (which token positions). :func:`steering` validates every intervention against the
model before touching it, attaches them through :func:`interlingua.models.hooked`, and always
detaches them, even when the body raises.

Token positions are tracked per forward call, so that they mean the same thing in a plain
forward pass, in ``generate()`` with its KV cache (where every step after the first sees one
new position), with left or right padding, and in a batch of any size. Each position has a
*token index*: its place among the row's real (non-padding) tokens, counted from 0. A
sequence's *prompt* is what the first forward pass of a generation (the one without a cache)
saw; a later call that re-runs those tokens plus new ones (``generate(use_cache=False)``)
continues the same sequences. ``positions`` selects:

``"all"``        every real token (padding is never steered);
``"prompt"``     the prompt's tokens only (the KV cache then carries the steering on);
``"generated"``  every position whose output *predicts a new token*: the prompt's last token and
                 every generated token fed back. The prompt's last token is included on purpose:
                 it produces the first generated token, and leaving it out is the classic
                 off-by-one that leaves the first new token unsteered (nrimsky/CAA#3).

``tokens`` narrows this further to a per-token mask in token-index coordinates (padding-free,
so the same mask works with any padding side and inside ``generate()``).

How a call is placed: a 2-D ``attention_mask`` covers the cached positions and the new ones, so
its width minus the call's length is the number already cached, and its zeros are the padding.
Without one (transformers 5 ``generate()`` drops an all-ones mask, so every unpadded batch,
batch size 1 included, decodes without a mask) every position is real and the KV cache says how
many came before: it is read under either name transformers has given it (``cache`` since
transformers 5, ``past_key_values`` before), or from ``cache_position`` where a model still gets
one. Missing the cache there would make every decoding step look like a new one-token prompt.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from interlingua.errors import InterlinguaError
from interlingua.models.hooks import HookPoint, hooked
from interlingua.steer import ops
from interlingua.steer.strength import check_number, check_scale, check_vector, typical_norm, unit

OPS = ("add", "ablate", "clamp", "custom")
POSITIONS = ("all", "prompt", "generated")


@dataclass
class Step:
    """Where the positions of the current forward call sit in their sequences.

    ``real`` ``[batch, seq]``: not padding. ``token_index`` ``[batch, seq]``: place among the
    row's real tokens (0-based; meaningless where ``real`` is False). ``prompt_len`` ``[batch]``:
    real tokens in the prompt. ``past``: positions already in the KV cache (0 on the first call).
    """

    real: torch.Tensor
    token_index: torch.Tensor
    prompt_len: torch.Tensor
    past: int


class PositionTracker:
    """A forward pre-hook on the base model that records the :class:`Step` of every call."""

    def __init__(self) -> None:
        self.step: Step | None = None
        self.calls = 0
        self._seen: torch.Tensor | None = None  # every token id of the current sequences so far

    def pre_hook(self, module, args, kwargs):
        kwargs = _named(module, args, kwargs)
        ids = kwargs.get("input_ids")
        if ids is None:
            embeds = kwargs.get("inputs_embeds")
            if embeds is None:
                return None
            b, s = embeds.shape[:2]
            device = embeds.device
        else:
            b, s = ids.shape[:2]
            device = ids.device
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            full = mask.to(device).bool()
            past = full.shape[1] - s
            if past < 0:
                raise InterlinguaError(
                    f"the attention mask ({full.shape[1]} columns) is shorter than the input ({s} positions)."
                )
        else:  # no 2-D mask: every position is real; the cache says how many came before
            past = _cached_length(kwargs)
            full = torch.ones(b, past + s, dtype=torch.bool, device=device)
        token_index = full.long().cumsum(1)[:, past:] - 1
        real = full[:, past:]
        previous = self.step
        seen = self._seen
        same_rows = previous is not None and previous.prompt_len.shape[0] == b
        if past == 0 and not (same_rows and _extends(ids, seen)):
            prompt_len = full.sum(1)  # a new sequence: everything in this first call is the prompt
        elif same_rows:
            prompt_len = previous.prompt_len  # a continuation (with a cache, or without one: see _extends)
        else:
            # A continuation whose first call happened outside this context: what is cached is the prompt.
            prompt_len = full[:, :past].sum(1)
        if ids is not None:
            self._seen = ids if past == 0 else (torch.cat([seen, ids], 1) if seen is not None and seen.shape[0] == b
                                                else None)
        self.step = Step(real=real, token_index=token_index, prompt_len=prompt_len.to(device), past=past)
        self.calls += 1
        return None


# The names the KV cache has been passed under to a model's forward: transformers 5 renamed
# ``past_key_values`` to ``cache`` (models still accept the old name, deprecated, and rename it).
_CACHE_NAMES = ("cache", "past_key_values")


def _named(module, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by name: positional ones bound to ``module.forward``'s signature."""
    if not args:
        return kwargs
    try:
        return {**inspect.signature(module.forward).bind_partial(*args).arguments, **kwargs}
    except (TypeError, ValueError):  # no signature to bind to: the first positional argument is the input
        return {"input_ids": args[0], **kwargs}


def _cached_length(kwargs: dict) -> int:
    """Positions already in the KV cache of this call (0 without a cache)."""
    position = kwargs.get("cache_position")  # transformers < 5 passes it on every call
    if isinstance(position, torch.Tensor) and position.numel():
        return int(position.reshape(-1)[0])
    for name in _CACHE_NAMES:
        cache = kwargs.get(name)
        if cache is None:
            continue
        if hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length())
        if isinstance(cache, (tuple, list)) and cache and cache[0] is not None and len(cache[0]):
            return int(cache[0][0].shape[-2])  # the legacy tuple format: (key, value) per layer
    return 0


def _extends(ids: torch.Tensor | None, seen: torch.Tensor | None) -> bool:
    """True when a cache-free call re-runs the previous sequence plus new tokens (``generate(use_cache=False)``)."""
    if ids is None or seen is None or ids.shape[0] != seen.shape[0] or ids.shape[1] <= seen.shape[1]:
        return False
    return bool(torch.equal(ids[:, :seen.shape[1]], seen.to(ids.device)))


@dataclass(frozen=True, eq=False)
class Intervention:
    """One change to the activations at one hook point.

    Build it with :func:`add`, :func:`ablate`, :func:`clamp` or :func:`custom`; apply it with
    :func:`steering`. ``vector`` is the direction (its norm matters only for ``scale="raw"``);
    ``strength`` is the added amount for ``add`` and the target projection for ``clamp``
    (see :mod:`interlingua.steer.strength` for the scales); ``typical_norm`` overrides the hook's
    measured typical norm for relative strengths.
    """

    op: str
    hook: str
    vector: torch.Tensor | None = None
    strength: float = 0.0
    scale: str = "relative"
    typical_norm: float | None = None
    positions: str = "all"
    tokens: torch.Tensor | None = None
    fn: Callable | None = field(default=None, compare=False)
    label: str = ""

    def describe(self) -> dict:
        """JSON-friendly summary (no tensors)."""
        return {"op": self.op, "hook": self.hook, "strength": self.strength, "scale": self.scale,
                "positions": self.positions, "label": self.label,
                "masked_tokens": self.tokens is not None}


def _target(target, hook: str | None) -> tuple[torch.Tensor, str, float | None, str]:
    """(vector, hook, typical norm, label) from a Concept, or from a bare vector plus ``hook``."""
    if hasattr(target, "direction") and hasattr(target, "hook"):  # a Concept
        return target.direction, hook or target.hook, getattr(target, "typical_norm", None), target.name
    if hook is None:
        raise InterlinguaError("a bare vector needs hook= (for example hook='resid_post.12').")
    return torch.as_tensor(target), hook, None, "vector"


def add(target, strength: float = 1.0, *, hook: str | None = None, scale: str = "relative",
        typical_norm: float | None = None, positions: str = "all", tokens=None) -> Intervention:
    """Add ``strength`` along ``target`` (a Concept, or a vector with ``hook=``)."""
    vector, hook, tn, label = _target(target, hook)
    return Intervention("add", hook, vector, strength, scale, typical_norm if typical_norm is not None else tn,
                        positions, _tokens(tokens), label=label)


def ablate(target, *, hook: str | None = None, positions: str = "all", tokens=None) -> Intervention:
    """Project the direction of ``target`` out of the activations."""
    vector, hook, tn, label = _target(target, hook)
    return Intervention("ablate", hook, vector, 0.0, "absolute", tn, positions, _tokens(tokens), label=label)


def clamp(target, value: float, *, hook: str | None = None, scale: str = "relative",
          typical_norm: float | None = None, positions: str = "all", tokens=None) -> Intervention:
    """Set the projection on the unit direction of ``target`` to ``value`` (× typical norm if relative)."""
    vector, hook, tn, label = _target(target, hook)
    if scale == "raw":
        raise InterlinguaError("clamp takes scale='relative' or 'absolute' (a projection has no raw scale).")
    return Intervention("clamp", hook, vector, value, scale, typical_norm if typical_norm is not None else tn,
                        positions, _tokens(tokens), label=label)


def custom(hook: str, fn: Callable[[torch.Tensor, torch.Tensor, Step], torch.Tensor], *, positions: str = "all",
           tokens=None, label: str = "custom") -> Intervention:
    """Any function ``fn(x, active, step) -> x'`` at ``hook``; ``active`` is the position mask."""
    if not callable(fn):
        raise InterlinguaError("custom(fn=...) needs a function fn(x, active, step) -> tensor.")
    return Intervention("custom", hook, None, 0.0, "absolute", None, positions, _tokens(tokens), fn=fn, label=label)


def _tokens(tokens) -> torch.Tensor | None:
    """A per-token mask: bool ``[T]`` or ``[batch, T]``, a list of token indices (every row), or a list
    of token-index lists (one per row). Indices are token indices (real tokens, from 0)."""
    if tokens is None:
        return None
    if isinstance(tokens, torch.Tensor):
        if tokens.dim() not in (1, 2):
            raise InterlinguaError(f"tokens= must be a [T] or [batch, T] mask, not shape {tuple(tokens.shape)}.")
        return tokens.bool()
    tokens = list(tokens)
    flat = all(isinstance(t, int) for t in tokens)  # the same indices for every row
    rows = [tokens] if flat else [list(r) for r in tokens]
    if any(int(i) < 0 for r in rows for i in r):
        raise InterlinguaError("token indices in tokens= count from 0 (negative indices are not supported).")
    width = max((max(r) + 1 for r in rows if r), default=1)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        mask[i, list(r)] = True
    return mask[0] if flat else mask


@dataclass
class _Bound:
    """An intervention checked against one model, with its tensors ready."""

    iv: Intervention
    point: HookPoint
    delta: torch.Tensor | None = None  # add
    unit: torch.Tensor | None = None  # ablate, clamp
    value: float = 0.0  # clamp
    norm_used: float | None = None

    def active(self, step: Step | None, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        if step is None or tuple(step.real.shape) != (b, s):
            raise InterlinguaError(
                f"cannot tell which tokens {self.point.name} sees (a call of shape {(b, s)} that did not go "
                "through the model's forward); run the model itself inside steering()."
            )
        m = step.real.to(x.device)
        idx = step.token_index.to(x.device)
        if self.iv.positions == "prompt":
            m = m & (idx < step.prompt_len.to(x.device).unsqueeze(1))
        elif self.iv.positions == "generated":
            m = m & (idx >= step.prompt_len.to(x.device).unsqueeze(1) - 1)
        tokens = self.iv.tokens
        if tokens is not None:
            tokens = tokens.to(x.device)
            if tokens.dim() == 1:
                tokens = tokens.unsqueeze(0).expand(b, -1)
            if tokens.shape[0] != b:
                raise InterlinguaError(f"tokens= has {tokens.shape[0]} rows but the batch has {b}.")
            width = tokens.shape[1]
            picked = torch.gather(tokens, 1, idx.clamp(0, width - 1))
            m = m & picked & (idx >= 0) & (idx < width)
        return m

    def apply(self, x: torch.Tensor, step: Step | None) -> torch.Tensor:
        active = self.active(step, x)
        op = self.iv.op
        if op == "add":
            return ops.add_vector(x, self.delta.to(x.device), active)
        if op == "ablate":
            return ops.project_out(x, self.unit.to(x.device), active)
        if op == "clamp":
            return ops.clamp_projection(x, self.unit.to(x.device), self.value, active)
        out = self.iv.fn(x, active, step)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise InterlinguaError(f"custom intervention '{self.iv.label}' must return a tensor of shape {tuple(x.shape)}.")
        return out


def bind(model, iv: Intervention) -> _Bound:
    """Check ``iv`` against ``model`` (hook, width, finite strength) and resolve its strength."""
    if not isinstance(iv, Intervention):
        raise InterlinguaError(f"expected an Intervention (from add / ablate / clamp / custom), not {type(iv).__name__}.")
    if iv.op not in OPS:
        raise InterlinguaError(f"unknown intervention {iv.op!r}; choose one of {', '.join(OPS)}.")
    if iv.positions not in POSITIONS:
        raise InterlinguaError(f"positions must be one of {', '.join(POSITIONS)}, not {iv.positions!r}.")
    point = model.hook(iv.hook)  # unknown hook → UnknownHookError listing the valid names
    bound = _Bound(iv=iv, point=point)
    if iv.op == "custom":
        return bound
    check_scale(iv.scale)
    strength = check_number(iv.strength, f"the strength of the {iv.op} at {point.name}")
    vector = check_vector(iv.vector, model.d_model, f"the direction of '{iv.label}' at {point.name}", model.name)
    u = unit(vector, f"the direction of '{iv.label}' at {point.name}")
    norm = None
    if iv.scale == "relative" and iv.op in ("add", "clamp"):
        norm = iv.typical_norm if iv.typical_norm is not None else typical_norm(model, point.name)
        norm = check_number(norm, f"the typical norm at {point.name}")
    if iv.op == "add":
        if iv.scale == "raw":
            bound.delta = strength * vector
        else:
            bound.delta = strength * (norm if norm is not None else 1.0) * u
    elif iv.op == "ablate":
        bound.unit = u
    else:
        bound.unit = u
        bound.value = strength * (norm if norm is not None else 1.0)
    bound.norm_used = norm
    return bound


@contextlib.contextmanager
def steering(model, interventions: Intervention | Sequence[Intervention]) -> Iterator[PositionTracker]:
    """Apply ``interventions`` to ``model`` (a LoadedModel) for the body of the ``with``.

    Every intervention is validated first, so a bad one fails before the model is touched.
    Several at one hook point are applied in the order given. The hooks (and the position
    tracker) are removed on exit, also when the body raises. Yields the tracker, whose
    ``step`` describes the last forward call.
    """
    if isinstance(interventions, Intervention):
        interventions = [interventions]
    bound = [bind(model, iv) for iv in interventions]
    by_point: dict[HookPoint, list[_Bound]] = {}
    for b in bound:
        by_point.setdefault(b.point, []).append(b)
    tracker = PositionTracker()

    def make(items: list[_Bound]):
        def fn(x: torch.Tensor) -> torch.Tensor:
            for item in items:
                x = item.apply(x, tracker.step)
            return x

        return fn

    handle = model.model.base_model.register_forward_pre_hook(tracker.pre_hook, with_kwargs=True)
    try:
        with hooked(model.model, {p: make(items) for p, items in by_point.items()}):
            yield tracker
    finally:
        handle.remove()
