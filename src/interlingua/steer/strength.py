"""What a steering strength means, so that one number means the same on every model and layer.

Residual-stream norms grow by more than an order of magnitude through a network (2.2 at
layer 8 vs 45.8 at layer 21 of SmolLM2-135M for one mean-difference vector), so a raw
coefficient cannot be compared across layers or models. interlingua states strength in one
of three *scales*:

``relative`` (default)
    ``strength × typical_norm × unit direction``, where ``typical_norm`` is the median L2
    norm of the activations at the hook (a :class:`~interlingua.concepts.Concept` carries
    it; for a bare vector it is measured on bundled-corpus text). ``strength=0.5`` adds a
    vector half as long as a typical activation, on any model, at any layer.
``absolute``
    ``strength × unit direction``: the added vector has norm ``strength``.
``raw``
    ``strength × vector`` with the vector as given (a mean difference, a llama.cpp control
    vector): ``strength=1`` reproduces the vector exactly.
"""

from __future__ import annotations

import math

import torch

from interlingua.errors import InterlinguaError

SCALES = ("relative", "absolute", "raw")


def check_number(value: float, what: str) -> float:
    """A finite float, or a clear error (NaN and infinite strengths are refused)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InterlinguaError(f"{what} must be a number, not {value!r}.") from None
    if not math.isfinite(value):
        raise InterlinguaError(f"{what} must be a finite number, not {value}.")
    return value


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise InterlinguaError(f"unknown strength scale {scale!r}; choose one of {', '.join(SCALES)}.")
    return scale


def check_vector(vector: torch.Tensor, d_model: int, what: str, model_name: str = "the model") -> torch.Tensor:
    """A finite 1-D float vector of the model's width."""
    if not isinstance(vector, torch.Tensor):
        vector = torch.as_tensor(vector)
    vector = vector.detach().float().cpu()
    if vector.dim() != 1 or vector.shape[0] != d_model:
        raise InterlinguaError(
            f"{what} has shape {tuple(vector.shape)}, but {model_name} has width {d_model}: a steering "
            f"direction must be a vector of {d_model} numbers (is it from another model?)."
        )
    if not bool(torch.isfinite(vector).all()):
        raise InterlinguaError(f"{what} contains NaN or infinite values.")
    return vector


def unit(vector: torch.Tensor, what: str = "the direction") -> torch.Tensor:
    norm = float(vector.norm())
    if norm == 0.0:
        raise InterlinguaError(f"{what} is the zero vector; it has no direction to steer along.")
    return vector / norm


def typical_norm(model, hook: str, texts: list[str] | None = None, *, n_docs: int = 16, max_tokens: int = 96,
                 skip_first: int = 1) -> float:
    """Median L2 norm of the activations at ``hook`` over every token of ``texts``.

    Without ``texts``, the first ``n_docs`` documents of the bundled corpus's test split
    (``max_tokens`` tokens each) are used and the result is memoised on the model. The first
    ``skip_first`` positions of each text are left out: the first token is an attention sink
    whose norm is far from typical on many models (Gemma-3).
    """
    from interlingua.activations import at_positions
    from interlingua.data.corpus import load_corpus

    hook = model.hook(hook).name
    memo = model.info.setdefault("steer_typical_norm", {}) if texts is None else {}
    key = (hook, n_docs, max_tokens, skip_first, str(model.dtype))
    if key in memo:
        return memo[key]
    if texts is None:
        texts = load_corpus("test", max_docs=n_docs)
    lengths = [min(len(ids), max_tokens) for ids in model.tokenizer(list(texts))["input_ids"]]
    positions = [list(range(min(skip_first, n - 1), n)) for n in lengths]
    acts = at_positions(model, texts, hook, positions, max_tokens=max_tokens)[hook]
    value = float(acts.norm(dim=1).median())
    memo[key] = value
    return value
