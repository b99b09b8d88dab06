"""The numerics of steering, as pure functions on one activation tensor.

Every operation takes the activation ``x`` ``[batch, seq, d]`` at a hook point and a boolean
``active`` mask ``[batch, seq]`` saying which positions to change; positions outside the mask
are returned bit-for-bit unchanged (``torch.where``, not a multiplication by zero).

* :func:`add_vector`: ``x + delta`` (activation addition, CAA / ActAdd / control vectors).
* :func:`project_out`: remove the component along a unit direction (directional ablation).
* :func:`clamp_projection`: set the component along a unit direction to a fixed value
  (as SAE-feature clamping does), whatever it was before.

Projections are computed in float32 even when the model runs in bfloat16, so that a clamp
to a value lands on that value to float32 precision before the cast back.
"""

from __future__ import annotations

import torch


def add_vector(x: torch.Tensor, delta: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """``x + delta`` at active positions; ``delta`` is ``[d]``."""
    return torch.where(active.unsqueeze(-1), x + delta.to(x.dtype), x)


def projection(x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """``x · unit`` in float32, ``[batch, seq]``."""
    return x.float() @ unit.float()


def project_out(x: torch.Tensor, unit: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """``x − (x·u) u`` at active positions (``unit`` must have norm 1)."""
    coef = projection(x, unit)
    new = (x.float() - coef.unsqueeze(-1) * unit.float()).to(x.dtype)
    return torch.where(active.unsqueeze(-1), new, x)


def clamp_projection(x: torch.Tensor, unit: torch.Tensor, value: float, active: torch.Tensor) -> torch.Tensor:
    """``x + (value − x·u) u`` at active positions: the component along ``u`` becomes ``value``."""
    coef = projection(x, unit)
    new = (x.float() + (value - coef).unsqueeze(-1) * unit.float()).to(x.dtype)
    return torch.where(active.unsqueeze(-1), new, x)
