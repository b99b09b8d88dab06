"""``torch.compile`` for the SAE trainer's memory-bound loops, with an eager fallback.

On CPU most of a training step outside the encoder matmul is passes over memory: the optimizer's
elementwise updates of two ``d_sae × d_in`` matrices, and gathers of decoder rows. Eager PyTorch
makes one pass (and often one temporary) per operation; inductor fuses a whole expression into one
loop, e.g. a gather, a product and a row sum without the ``[B, K, d]`` temporary, or the decoder's
projection and Adam step in one sweep.

A :class:`Fused` function is compiled on its first large call (at least :data:`MIN_ELEMENTS`
elements of work, on CPU or CUDA); smaller calls run the eager function, because compiling costs
seconds. ``INTERLINGUA_SAE_COMPILE=0`` switches compilation off. If compiling or running a compiled
function fails once (no C++ compiler, an unsupported backend), a warning says so and every later
call runs eagerly: the eager functions compute the same values, only slower.

A compiled function may write its inputs in place (on CPU that is cheaper than writing new
tensors: no read-for-ownership of fresh memory), but not an input that a row reduction in the same
kernel reads: inductor in torch 2.13 fails on that with a ``KeyError``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch

MIN_ELEMENTS = 1 << 20  # below this much work, compiling costs more than it saves
_state = {"failed": os.environ.get("INTERLINGUA_SAE_COMPILE", "1") == "0"}


class Fused:
    """``fn`` run through ``torch.compile`` when the work is large; ``eager`` (default ``fn``) otherwise.

    ``dynamic`` is passed to ``torch.compile``: ``True`` for functions called with varying shapes
    (code widths differ between architectures and batches), ``False`` for fixed ones.
    """

    def __init__(self, fn: Callable, eager: Callable | None = None, *, dynamic: bool = False):
        self.fn = fn
        self.eager = eager or fn
        self.dynamic = dynamic
        self.compiled: Callable | None = None

    def __call__(self, *args, work: int, device: torch.device):
        if _state["failed"] or work < MIN_ELEMENTS or device.type not in ("cpu", "cuda"):
            return self.eager(*args)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.fn, dynamic=self.dynamic, fullgraph=True)
            return self.compiled(*args)
        except Exception as exc:  # no compiler, unsupported backend, …: the eager function is equivalent
            _state["failed"] = True
            warnings.warn(f"torch.compile of {self.fn.__name__} failed ({type(exc).__name__}: {exc}); using eager "
                          "ops, which compute the same values more slowly.", stacklevel=2)
            return self.eager(*args)


def compiling() -> bool:
    """Whether large calls still take the compiled path (no failure so far, not switched off)."""
    return not _state["failed"]
