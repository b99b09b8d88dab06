"""Planted ground truth for the audit: a known change to B on a known set of inputs.

:func:`trigger_plant` adds ``vector`` to B's residual stream at ``hook`` on every position at or
after a *trigger* token (any token whose text contains ``trigger``), and nowhere else: inputs
without the trigger read exactly as before, inputs with it carry a change the audit should
find. Used by the tests and by ``benchmarks/audit_planted.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from interlingua.errors import InterlinguaError
from interlingua.models.hooks import hooked
from interlingua.models.loaded import LoadedModel


def trigger_ids(model: LoadedModel, trigger: str) -> torch.Tensor:
    """Ids of every token of ``model``'s vocabulary whose text contains ``trigger``."""
    tok = model.tokenizer
    ids = [i for i in range(len(tok)) if trigger in tok.decode([i])]
    if not ids:
        raise InterlinguaError(f"no token of {model.name} contains {trigger!r}.")
    return torch.tensor(ids)


@contextlib.contextmanager
def trigger_plant(model: LoadedModel, hook: str, vector: torch.Tensor, trigger: str) -> Iterator[torch.Tensor]:
    """Within the block, ``model`` adds ``vector`` at ``hook`` from the first trigger token of each row on.

    Yields the trigger's token ids. Hooks are removed on exit, even on error.
    """
    point = model.hook(hook)
    ids = trigger_ids(model, trigger)
    vector = torch.as_tensor(vector, dtype=torch.float32).flatten()
    if vector.shape[0] != model.d_model:
        raise InterlinguaError(f"the planted vector has width {vector.shape[0]}; {model.name} has {model.d_model}.")
    state: dict[str, torch.Tensor] = {}

    def record_ids(module, args, kwargs):
        ids_in = kwargs.get("input_ids", args[0] if args else None)
        if ids_in is not None:
            state["after"] = torch.isin(ids_in, ids.to(ids_in.device)).long().cumsum(1) > 0

    def add(x: torch.Tensor) -> torch.Tensor:
        after = state.get("after")
        if after is None or after.shape != x.shape[:2]:
            return x
        return x + after[..., None].to(x.dtype) * vector.to(x.device, x.dtype)

    handle = model.model.base_model.register_forward_pre_hook(record_ids, with_kwargs=True)
    try:
        with hooked(model.model, {point: add}):
            yield ids
    finally:
        handle.remove()
