"""Unit search: B's single directions (MLP neurons, residual dimensions, SAE latents) ranked by
how well each one alone tracks A's concept score on aligned words.

The null is the best |correlation| any unit reaches when A's scores are permuted: with
thousands of units the maximum of pure noise is far from 0, so a top unit means something
only above that band.
"""

from __future__ import annotations

import torch
from torch import nn

from interlingua.errors import InterlinguaError
from interlingua.models.hooks import find_layers
from interlingua.models.loaded import LoadedModel


def neuron_hooks(model: LoadedModel, layer: int) -> list[str]:
    """The two hook points whose sum is the input of block ``layer``'s MLP sub-block."""
    return [model.hook(f"resid_pre.{layer}").name, model.hook(f"attn_out.{layer}").name]


@torch.inference_mode()
def mlp_neurons(model: LoadedModel, layer: int, resid_pre: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """Activations of block ``layer``'s MLP neurons (the input of its down projection), computed
    from the residual stream entering the MLP: act(gate(n(x))) · up(n(x)) with x = resid_pre +
    attn_out and n the block's pre-MLP norm. Gated MLPs (Llama, Gemma, Mistral, Qwen)."""
    block = find_layers(model.model)[layer]
    mlp = getattr(block, "mlp", None)
    norm = getattr(block, "pre_feedforward_layernorm", None) or getattr(block, "post_attention_layernorm", None)
    if not all(isinstance(getattr(mlp, n, None), nn.Module) for n in ("gate_proj", "up_proj")) or norm is None:
        raise InterlinguaError(f"neuron search needs a gated MLP (gate_proj / up_proj); {model.name} block "
                               f"{layer} is {type(block).__name__}.")
    p = next(mlp.parameters())
    h = norm((resid_pre + attn_out).to(p.dtype))
    return (mlp.act_fn(mlp.gate_proj(h)) * mlp.up_proj(h)).float()


def correlations(units: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every column of ``units`` [n, u] with ``score`` [n] (or [n, k] → [u, k])."""
    u = units.double() - units.double().mean(0)
    s = score.double()
    s = (s - s.mean(0)) if s.dim() > 1 else (s - s.mean())[:, None]
    c = (u.T @ s) / (u.norm(dim=0)[:, None] * s.norm(dim=0)[None, :]).clamp_min(1e-300)
    return c if score.dim() > 1 else c[:, 0]


def unit_search(units: torch.Tensor, score: torch.Tensor, perms: torch.Tensor, *, top: int = 5) -> dict:
    """The ``top`` units by |correlation| with A's score, and the best one tested against the null
    of the best |correlation| when A's scores are reassigned by ``perms`` ([draws, n] row indices,
    e.g. :func:`interlingua.translate.nulls.document_permutations`)."""
    from interlingua.translate.nulls import ALPHA, null_summary

    if units.shape[0] != score.shape[0]:
        raise InterlinguaError(f"{units.shape[0]} unit rows for {score.shape[0]} scores.")
    corr = correlations(units, score)
    best = corr.abs().argsort(descending=True)[:top]
    null_max = correlations(units, score[perms].T).abs().max(dim=0).values
    value = float(corr[best[0]].abs())
    tested = null_summary(value, null_max)
    return {
        "n_units": units.shape[1],
        "top": [{"unit": int(i), "corr": round(float(corr[i]), 4)} for i in best],
        "best_abs_corr": round(value, 4),
        "null_max_abs_corr": tested,
        "p_value": tested["p_value"],
        "above_null": tested["p_value"] is not None and tested["p_value"] <= ALPHA,
    }
