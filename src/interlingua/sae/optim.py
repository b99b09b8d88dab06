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

The update is done row block by row block so that the half-dozen elementwise passes run in cache.
A parameter group with ``unit_rows=True`` (the decoder) also gets, in the same pass over each
block, its gradient's component along each row removed before the step and its rows renormalised
to unit length after it — the unit-norm constraint without two more sweeps over memory.

Large tensors (a million elements and more) take the step as one ``torch.compile``-fused loop
when compilation works here (one read of ``y, z, v, g`` and one write of ``y, z, v`` instead of a
pass per operation: 5-10x faster on CPU); anything else, or ``INTERLINGUA_SAE_COMPILE=0``, runs the
eager ops, which compute the same step.

Measured and rejected: updating only the rows a batch used (a third of a 16k dictionary), with
idle rows brought up to date lazily in closed form. Gathering and scattering the used rows moved
as many bytes as the dense pass saves, and the step got slower on CPU.
"""

from __future__ import annotations

import math
import os
import warnings

import torch
from torch import Tensor

_BLOCK_ELEMENTS = 1 << 18  # 1 MiB of float32 per tensor per block
COMPILE_MIN_ELEMENTS = 1 << 20  # below this, compiling costs more than it saves
_compiled = {"fn": None, "project": None, "failed": os.environ.get("INTERLINGUA_SAE_COMPILE", "1") == "0"}


def _project_rows(g: Tensor, y: Tensor) -> Tensor:
    """``g_i − (g_i·y_i) y_i`` for each row (for ``torch.compile``: one pass where eager ops take three).

    It returns a new tensor: inductor (torch 2.13) fails on a kernel that writes an input that a
    row reduction in the same kernel reads.
    """
    return g - (g * y).sum(1, keepdim=True) * y


def _sf_math(y: Tensor, g: Tensor, z: Tensor, v: Tensor, c: Tensor, alpha: Tensor, gamma: Tensor, eps_b: Tensor,
             beta2: float) -> None:
    """The step as one expression (for ``torch.compile``): same formulas as :func:`_update`."""
    v_new = beta2 * v + (1 - beta2) * g * g
    step = g / (v_new.sqrt() + eps_b)
    y_new = torch.lerp(y, z, c) + alpha * step
    z_new = z + gamma * step
    v.copy_(v_new)
    y.copy_(y_new)
    z.copy_(z_new)


def _fused_update(y: Tensor, g: Tensor, z: Tensor, v: Tensor, *, lr: float, c: float, beta1: float, beta2: float,
                  eps: float, bias2: float, unit_rows: bool) -> bool:
    """Run the compiled step (the projection of ``g`` included when ``unit_rows``) if possible;
    ``False`` means the caller must run the eager one."""
    if _compiled["failed"] or y.numel() < COMPILE_MIN_ELEMENTS or y.device.type not in ("cpu", "cuda"):
        return False
    try:
        if _compiled["fn"] is None:
            _compiled["fn"] = torch.compile(_sf_math, dynamic=False, fullgraph=True)
            _compiled["project"] = torch.compile(_project_rows, dynamic=False, fullgraph=True)
        g = g.contiguous()
        if unit_rows:
            g = _compiled["project"](g, y)
        scalars = torch.tensor([c, lr * bias2 * (beta1 * (1 - c) - 1), -lr * bias2, bias2 * eps],
                               dtype=y.dtype, device=y.device)
        _compiled["fn"](y, g, z, v, *scalars.unbind(), beta2)
        return True
    except Exception as exc:  # no compiler, unsupported backend, …: the eager step is equivalent
        _compiled["failed"] = True
        warnings.warn(f"torch.compile of the SAE optimizer step failed ({type(exc).__name__}); using eager ops, "
                      "which are slower but compute the same update.", stacklevel=3)
        return False


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
    """One step on blocks of rows: ``v ← β₂v + (1−β₂)g²``, ``ĝ = g / (√(v / (1−β₂ᵏ)) + ε)``,
    ``y ← lerp(y, z, c) + γ(β₁(1−c) − 1) ĝ``, ``z ← z − γ ĝ`` (which keeps ``y = (1−β₁)z + β₁x``).

    With ``b = √(1−β₂ᵏ)``: ``ĝ = b·g / (√v + b·ε)``, so ``b`` folds into the step sizes. With
    ``unit_rows``: first ``g_i ← g_i − (g_i·y_i) y_i``, last ``y_i ← y_i / ‖y_i‖``.
    """
    if _fused_update(y, g, z, v, lr=lr, c=c, beta1=beta1, beta2=beta2, eps=eps, bias2=bias2, unit_rows=unit_rows):
        if unit_rows:
            y.div_(y.norm(dim=1, keepdim=True).clamp_min(torch.finfo(y.dtype).eps))
        return
    g = g.contiguous()
    if unit_rows:
        g.addcmul_(torch.linalg.vecdot(g, y)[:, None], y, value=-1.0)
    if y.ndim != 2:
        y, g, z, v = (t.view(-1, 1) for t in (y, g, z, v))
    rows, width = y.shape
    # One thread: blocks that stay in cache. Several threads: whole tensors, because each op is a
    # parallel region whose start costs a scheduler tick when the cores are shared (measured: the
    # blocked loop ran 30x slower on 2 contended threads).
    step_rows = max(1, _BLOCK_ELEMENTS // max(width, 1)) if torch.get_num_threads() == 1 else rows
    for s in range(0, rows, step_rows):
        e = min(s + step_rows, rows)
        yb, gb, zb, vb = y[s:e], g[s:e], z[s:e], v[s:e]
        vb.mul_(beta2).addcmul_(gb, gb, value=1 - beta2)
        denom = vb.sqrt().add_(bias2 * eps)
        yb.lerp_(zb, c).addcdiv_(gb, denom, value=lr * bias2 * (beta1 * (1 - c) - 1))
        zb.addcdiv_(gb, denom, value=-lr * bias2)
        if unit_rows:
            yb.div_(yb.norm(dim=1, keepdim=True).clamp_min(torch.finfo(yb.dtype).eps))
