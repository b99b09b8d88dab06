"""Named hook points that mean the same thing on every architecture.

Four points per block ``i``, all in residual-stream coordinates (width ``d_model``):

``resid_pre.i``   the residual stream entering block ``i``
``attn_out.i``    what the attention sub-block adds to the residual stream
``mlp_out.i``     what the MLP sub-block adds to the residual stream
``resid_post.i``  the residual stream leaving block ``i`` (= ``resid_pre.{i+1}``)

so that ``resid_post.i == resid_pre.i + attn_out.i + mlp_out.i`` on every supported
architecture. On Gemma-style "sandwich norm" blocks the sub-block output is taken *after*
its post-norm, because that is what is added to the stream.

:func:`hooked` attaches plain functions to hook points for the duration of a ``with``
block and always removes them, even when the forward pass raises.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from interlingua.errors import InterlinguaError, UnknownHookError

KINDS = ("resid_pre", "attn_out", "mlp_out", "resid_post")
_NAME = re.compile(r"^(?P<kind>[a-z_]+)\.(?P<layer>-?\d+)$")

# Called with the activation [batch, seq, d_model]; may return a replacement tensor.
HookFn = Callable[[torch.Tensor], torch.Tensor | None]


@dataclass(frozen=True, order=True)
class HookPoint:
    """A validated hook point. Ordering follows execution order in the forward pass."""

    layer: int
    stage: int  # index into KINDS
    n_layers: int

    @property
    def kind(self) -> str:
        return KINDS[self.stage]

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"

    def __str__(self) -> str:
        return self.name


def valid_names_message(n_layers: int) -> str:
    last = n_layers - 1
    return ", ".join(f"{k}.0 … {k}.{last}" for k in KINDS)


def parse_hook(name: str, n_layers: int, model_name: str = "the model") -> HookPoint:
    """Parse ``"resid_post.14"`` (negative layers count from the end) or fail with the valid names."""
    match = _NAME.match(name.strip())
    problem = None
    if match is None or match["kind"] not in KINDS:
        problem = f"unknown hook point '{name}'"
    else:
        layer = int(match["layer"])
        if layer < 0:
            layer += n_layers
        if not 0 <= layer < n_layers:
            problem = f"hook point '{name}' is out of range: {model_name} has {n_layers} layers"
    if problem:
        raise UnknownHookError(
            f"{problem}. Valid hook points for {model_name}: {valid_names_message(n_layers)} "
            f"(for example resid_post.{n_layers // 2}; negative layers count from the end)."
        )
    return HookPoint(layer=layer, stage=KINDS.index(match["kind"]), n_layers=n_layers)


def all_hook_points(n_layers: int) -> list[str]:
    return [f"{k}.{i}" for i in range(n_layers) for k in KINDS]


# --------------------------------------------------------------------------------------------
# Where each hook point lives in a transformers model


def find_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a (causal LM or base) transformers model."""
    base = getattr(model, "base_model", model)
    for path in ("layers", "h", "decoder.layers", "language_model.layers", "model.layers"):
        obj: object = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    raise InterlinguaError(
        f"cannot find the transformer blocks of {type(model).__name__}; interlingua supports "
        "decoder-only models whose blocks live in `.layers` or `.h` (Llama, Gemma, Mistral, "
        "Qwen, GPT-2, GPT-NeoX families)."
    )


def _sublayer(block: nn.Module, kind: str) -> nn.Module:
    """The module whose *output* is what the attention / MLP sub-block adds to the stream."""
    sandwich = hasattr(block, "post_feedforward_layernorm")
    names = {
        "attn_out": ("post_attention_layernorm",) if sandwich else ("self_attn", "attn", "attention"),
        "mlp_out": ("post_feedforward_layernorm",) if sandwich else ("mlp", "feed_forward"),
    }[kind]
    for n in names:
        if isinstance(getattr(block, n, None), nn.Module):
            return getattr(block, n)
    raise InterlinguaError(
        f"cannot find the {kind} sub-module of {type(block).__name__} (looked for {names})."
    )


def _first(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # type: ignore[index,return-value]


def _replace_first(output: object, new: torch.Tensor) -> object:
    return (new, *output[1:]) if isinstance(output, tuple) else new  # type: ignore[index]


def _register(model: nn.Module, point: HookPoint, fn: HookFn) -> torch.utils.hooks.RemovableHandle:
    block = find_layers(model)[point.layer]
    if point.kind == "resid_pre":

        def pre_hook(module, args, kwargs):
            if args:
                new = fn(args[0])
                if new is not None:
                    return (new, *args[1:]), kwargs
            else:
                new = fn(kwargs["hidden_states"])
                if new is not None:
                    return args, {**kwargs, "hidden_states": new}
            return None

        return block.register_forward_pre_hook(pre_hook, with_kwargs=True)

    module = block if point.kind == "resid_post" else _sublayer(block, point.kind)

    def hook(module, args, output):
        new = fn(_first(output))
        return None if new is None else _replace_first(output, new)

    return module.register_forward_hook(hook)


@contextlib.contextmanager
def hooked(model: nn.Module, fns: Mapping[HookPoint, HookFn]) -> Iterator[None]:
    """Attach ``fns`` to their hook points for the body of the ``with``; always detach them."""
    handles = []
    try:
        for point, fn in fns.items():
            handles.append(_register(model, point, fn))
        yield
    finally:
        for h in handles:
            h.remove()


class StopForward(Exception):
    """Raised from a hook to end a forward pass once everything needed has been captured."""


@contextlib.contextmanager
def capturing(
    model: nn.Module, points: list[HookPoint], stop: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the activation at each point into the yielded dict (keyed by hook name).

    With ``stop=True`` the forward pass is cut short after the last point in execution
    order: run the model inside :func:`stopping` (or catch :class:`StopForward`).
    """
    store: dict[str, torch.Tensor] = {}
    last = max(points)

    def make(point: HookPoint) -> HookFn:
        def fn(x: torch.Tensor) -> None:
            store[point.name] = x.detach()
            if stop and point == last:
                raise StopForward

        return fn

    with hooked(model, {p: make(p) for p in points}):
        yield store


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """Swallow the :class:`StopForward` that ends an early-stopped forward pass."""
    try:
        yield
    except StopForward:
        pass
