"""Floors for cross-model comparisons: copies of a model with some of its training removed.

Random networks still encode token identity, so these are floors to beat, not zeros:

* :func:`random_init_copy` redraws every weight tensor with the same mean and std;
* :func:`lexical_only_copy` keeps the trained token embeddings and redraws the blocks, so
  only lexical information (which token is where) survives.
"""

from __future__ import annotations

import copy

import torch

from interlingua.models.hooks import find_layers
from interlingua.models.loaded import LoadedModel


def _redraw(param: torch.nn.Parameter, gen: torch.Generator) -> None:
    if param.numel() < 2:
        return
    x = param.detach().float()
    mean, std = x.mean(), x.std()
    param.copy_((torch.randn(param.shape, generator=gen) * std + mean).to(param.dtype))


def random_init_copy(model: LoadedModel, seed: int = 0) -> LoadedModel:
    """Every weight tensor redrawn from a Gaussian with that tensor's mean and std."""
    m = copy.deepcopy(model.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            _redraw(p, gen)
    return LoadedModel(name=f"{model.name}[random-init]", model=m, tokenizer=model.tokenizer,
                       source=f"random-init copy of {model.name} (seed {seed})")


def lexical_only_copy(model: LoadedModel, seed: int = 0) -> LoadedModel:
    """Trained embeddings, blocks redrawn (same per-tensor mean and std)."""
    m = copy.deepcopy(model.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in find_layers(m).parameters():
            _redraw(p, gen)
    return LoadedModel(name=f"{model.name}[lexical-only]", model=m, tokenizer=model.tokenizer,
                       source=f"lexical-only copy of {model.name} (trained embeddings, random blocks, seed {seed})")
