"""Training loops for the toy models. All seeded; run them under :func:`single_thread` for speed."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from interlingua.toy.data import tms_batch
from interlingua.toy.models import FactorisedModel, ProjectedMLP, TiedSuperposition


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Small matmuls run several times faster on one thread than on a contended pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_tms(model: TiedSuperposition, probability: Tensor, importance: Tensor, steps: int,
              batch: int = 1024, lr: float = 1e-3, noise_std: float = 0.0, seed: int = 0) -> Tensor:
    """Fit ``model`` to TMS data: minimise ``E_x Σ_i I_i (x_i − x'_i)²`` (mean over batch and features).

    ``probability`` and ``importance`` have shape ``(instances, n)`` or ``(n,)``. With ``noise_std``
    the model sees ``x + ε``, ``ε ~ N(0, σ²I)``, and must output the clean ``x``.
    Returns the final loss of each instance (mean of the last 5% of steps).
    """
    instances, n = model.W.shape[:2]
    probability = probability.expand(instances, n)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    tail = max(1, steps // 20)
    losses = torch.zeros(instances)
    for step in range(steps):
        x = tms_batch(batch, probability, g)
        noisy = x + noise_std * torch.randn(x.shape, generator=g) if noise_std else x
        per_instance = (importance * (x - model(noisy)).pow(2)).mean(dim=(0, 2))
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        if step >= steps - tail:
            losses += per_instance.detach() / tail
    return losses


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_fixed_dataset(model: TiedSuperposition, data: Tensor, steps: int, lr: float = 1e-3,
                        weight_decay: float = 1e-2, warmup: int = 500) -> float:
    """Full-batch AdamW with warm-up and cosine decay on a fixed dataset ``(T, instances, n)``
    (Henighan et al.'s memorisation setting). Returns the final training loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, warmup))
    for _ in range(steps):
        loss = (data - model(data)).pow(2).mean(dim=(0, 2)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return float((data - model(data)).pow(2).mean())


@dataclass(frozen=True)
class Snapshot:
    """Parameters of a :class:`ProjectedMLP` after ``step`` steps, with its loss ``E‖x − y‖²`` on a
    fixed held-out sample (the same sample for every snapshot of a run)."""

    step: int
    loss: float
    W1: Tensor
    b1: Tensor
    W2: Tensor


@dataclass(frozen=True)
class ProjectedRun:
    loss: float  # mean training loss over the last 5% of steps
    snapshots: list[Snapshot]


def train_projected(model: ProjectedMLP, probability: Tensor, steps: int, batch: int = 1024,
                    lr: float = 1e-3, seed: int = 0, snapshots: int = 0) -> ProjectedRun:
    """Feature decoding (Jermyn et al.): minimise ``E‖x − model(x)‖²`` with AdamW (no weight decay).

    With ``snapshots = s > 0`` the parameters are copied every ``steps/s`` steps, so that one run
    shows how the solution drifts (e.g. monosemanticity at constant loss).
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    every = steps // snapshots if snapshots else 0
    held_out = tms_batch(8192, probability, torch.Generator().manual_seed(seed + 1)) if every else None
    tail = max(1, steps // 20)
    tail_loss = 0.0
    taken = []
    for step in range(1, steps + 1):
        x = tms_batch(batch, probability, g)
        loss = (x - model(x)).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step > steps - tail:
            tail_loss += float(loss.detach()) / tail
        if every and step % every == 0:
            with torch.no_grad():
                held = float((held_out - model(held_out)).pow(2).sum(1).mean())
            taken.append(Snapshot(step, held, *(t.detach().clone() for t in (model.W1, model.b1, model.W2))))
    return ProjectedRun(tail_loss, taken)


@dataclass(frozen=True)
class Dynamics:
    """Learning curves of a factorised model: ``strength[t, k] = a_kᵀ (U Vᵀ)_t b_k`` at ``times[t]``."""

    times: Tensor
    strength: Tensor
    loss: Tensor


def low_rank_target(n: int, strengths: list[float], seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Target ``Σ_k s_k a_k b_kᵀ`` with orthonormal ``a_k`` and ``b_k``. Returns ``(target, A, B)``."""
    g = torch.Generator().manual_seed(seed)
    A = torch.linalg.qr(torch.randn(n, len(strengths), generator=g, dtype=torch.float64))[0]
    B = torch.linalg.qr(torch.randn(n, len(strengths), generator=g, dtype=torch.float64))[0]
    s = torch.tensor(strengths, dtype=torch.float64)
    return (A * s) @ B.T, A, B


def train_factorised(model: FactorisedModel, target: Tensor, A: Tensor, B: Tensor, steps: int,
                     lr: float = 0.01, record_every: int = 10) -> Dynamics:
    """Plain gradient descent on ``½‖U Vᵀ − target‖²_F``, recording each mode's learned strength."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    times, strength, losses = [], [], []
    for step in range(steps + 1):
        M = model()
        loss = 0.5 * (M - target).pow(2).sum()
        if step % record_every == 0:
            with torch.no_grad():
                times.append(step * lr)
                strength.append(torch.einsum("ik,ij,jk->k", A, M, B))
                losses.append(float(loss))
        if step == steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return Dynamics(torch.tensor(times, dtype=torch.float64), torch.stack(strength),
                    torch.tensor(losses, dtype=torch.float64))
