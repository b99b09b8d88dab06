"""Schedule-free Adam (Defazio et al. 2024, "The Road Less Scheduled"), written for SAE training.

Three sequences per parameter: ``z`` takes plain Adam-normalised steps, ``x`` is their weighted
average (``c_t = γ_t² / Σ_{i≤t} γ_i²``), and the gradient is evaluated at the interpolation
``y = (1 − β₁) z + β₁ x``, which is what the parameter holds during training. Evaluation and
export use ``x`` (:meth:`ScheduleFreeAdam.averaged`). No learning-rate decay is needed; a short
warm-up is.

Why here: an SAE's first steps decide much of what it learns in a short run. Plain Adam's first
updates are sign-sized on every weight and undo the encoder/decoder initialisation before the
moments settle; averaging keeps the evaluated point stable while ``z`` moves fast. On SmolLM2
activations it matched sparsify's schedule-free signSGD per vector where plain Adam did not (see
``benchmarks/sae_train.py``).

A parameter group with ``unit_rows=True`` (the decoder) also gets its gradient's component along
each row removed before the step and its rows renormalised to unit length after it: the unit-norm
constraint as part of the optimizer's own passes over memory.

Large tensors (a million elements and more) take the step as one ``torch.compile``-fused loop
(:mod:`interlingua.sae.fused`) that reads ``y, z, v, g`` once and writes ``y, z, v`` in place
instead of making a pass per operation; for the decoder, the row dots ``g_i · y_i`` come from one
compiled reduction before it, the new rows' squared norms out of it, and the renormalisation is
one more in-place pass. Anything else runs the eager ops on row blocks that stay in cache, which
compute the same step.

Measured and rejected: updating only the rows a batch used (a third of a 16k dictionary), with
idle rows brought up to date lazily in closed form. Gathering and scattering the used rows moved
as many bytes as the dense pass saves, and the step got slower on CPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from interlingua.sae.fused import Fused

_BLOCK_ELEMENTS = 1 << 18  # 1 MiB of float32 per tensor per block


def _row_dots(g: Tensor, y: Tensor) -> Tensor:
    """``g_i · y_i`` for each row, as a column ``[rows, 1]``."""
    return (g * y).sum(1, keepdim=True)


def _sf_math(y: Tensor, g: Tensor, z: Tensor, v: Tensor, dots: Tensor | None, c: Tensor, alpha: Tensor,
             gamma: Tensor, eps_b: Tensor, beta2: float) -> Tensor | None:
    """The step as one expression, in place (for ``torch.compile``): same formulas as :func:`_eager_update`.

    With ``dots`` (the rows' ``g_i · y_i``) the gradient is first projected and the squared row norms
    of the new ``y`` are returned, for the caller to renormalise (dividing here, in the kernel that
    writes ``y``, is what inductor fails on).
    """
    if dots is not None:
        g = g - dots * y
    v_new = beta2 * v + (1 - beta2) * g * g
    step = g / (v_new.sqrt() + eps_b)
    y_new = torch.lerp(y, z, c) + alpha * step
    z_new = z + gamma * step
    v.copy_(v_new)
    y.copy_(y_new)
    z.copy_(z_new)
    return None if dots is None else (y_new * y_new).sum(1, keepdim=True)


class ScheduleFreeAdam(torch.optim.Optimizer):
    """Schedule-free Adam without weight decay. ``lr`` may be changed between steps (warm-up)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_sum": 0.0, "k": 0,
                                  "unit_rows": False})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - see the module docstring
        if closure is not None:
            raise ValueError("ScheduleFreeAdam does not take a closure.")
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            group["k"] += 1
            k = group["k"]
            group["weight_sum"] += lr ** 2
            c = lr ** 2 / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
            bias2 = math.sqrt(1 - beta2 ** k)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["z"] = p.detach().clone()
                    state["exp_avg_sq"] = torch.zeros_like(p)
                _update(p.data, p.grad, state["z"], state["exp_avg_sq"], lr=lr, c=c, beta1=beta1, beta2=beta2,
                        eps=eps, bias2=bias2, unit_rows=group["unit_rows"] and p.ndim == 2)

    @torch.no_grad()
    def averaged(self, p: Tensor) -> Tensor:
        """The averaged point ``x = (y − (1 − β₁) z) / β₁`` for parameter ``p`` (``p`` itself before any step)."""
        state = self.state.get(p)
        if not state:
            return p.detach().clone()
        beta1 = next(g["betas"][0] for g in self.param_groups if any(q is p for q in g["params"]))
        return torch.lerp(p.detach(), state["z"], 1 - 1 / beta1)


def _update(y: Tensor, g: Tensor, z: Tensor, v: Tensor, *, lr: float, c: float, beta1: float, beta2: float,
            eps: float, bias2: float, unit_rows: bool = False) -> None:
    """One step, in place: ``v ← β₂v + (1−β₂)g²``, ``ĝ = g / (√(v / (1−β₂ᵏ)) + ε)``,
    ``y ← lerp(y, z, c) + γ(β₁(1−c) − 1) ĝ``, ``z ← z − γ ĝ`` (which keeps ``y = (1−β₁)z + β₁x``).

    With ``b = √(1−β₂ᵏ)``: ``ĝ = b·g / (√v + b·ε)``, so ``b`` folds into the step sizes. With
    ``unit_rows``: first ``g_i ← g_i − (g_i·y_i) y_i``, last ``y_i ← y_i / ‖y_i‖``.
    """
    g = g.contiguous()
    work, device = y.numel(), y.device
    dots = _fused_dots(g, y, work=work, device=device) if unit_rows else None
    scalars = torch.tensor([c, lr * bias2 * (beta1 * (1 - c) - 1), -lr * bias2, bias2 * eps], dtype=y.dtype,
                           device=device)
    sq_norms = _fused_step(y, g, z, v, dots, *scalars.unbind(), beta2, work=work, device=device)
    if unit_rows:
        y.mul_(sq_norms.clamp_min(torch.finfo(y.dtype).tiny).rsqrt())


def _eager_step(y: Tensor, g: Tensor, z: Tensor, v: Tensor, dots: Tensor | None, c: Tensor, alpha: Tensor,
                gamma: Tensor, eps_b: Tensor, beta2: float) -> Tensor | None:
    """:func:`_sf_math` with eager ops on blocks of rows that stay in cache."""
    c, alpha, gamma, eps_b = (float(s) for s in (c, alpha, gamma, eps_b))
    if dots is not None:
        g.addcmul_(dots, y, value=-1.0)
    y2, g2, z2, v2 = (t.view(-1, 1) if t.ndim != 2 else t for t in (y, g, z, v))
    rows, width = y2.shape
    # One thread: blocks that stay in cache. Several threads: whole tensors, because each op is a
    # parallel region whose start costs a scheduler tick when the cores are shared (measured: the
    # blocked loop ran 30x slower on 2 contended threads).
    step_rows = max(1, _BLOCK_ELEMENTS // max(width, 1)) if torch.get_num_threads() == 1 else rows
    for s in range(0, rows, step_rows):
        e = min(s + step_rows, rows)
        yb, gb, zb, vb = y2[s:e], g2[s:e], z2[s:e], v2[s:e]
        vb.mul_(beta2).addcmul_(gb, gb, value=1 - beta2)
        denom = vb.sqrt().add_(eps_b)
        yb.lerp_(zb, c).addcdiv_(gb, denom, value=alpha)
        zb.addcdiv_(gb, denom, value=gamma)
    return None if dots is None else _row_dots(y, y)


_fused_dots = Fused(_row_dots)
_fused_step = Fused(_sf_math, eager=_eager_step)
