"""Sparse numerics of a sparse autoencoder: selection, sparse encode gradients, sparse decode.

A code is a pair ``(values, indices)`` of shape ``[B, K]``: row ``b`` uses latents
``indices[b, :]`` with coefficients ``values[b, :]`` (padding slots carry value 0). Nothing here
ever builds a dense ``[B, d_sae]`` gradient:

* :func:`encode_at` returns the pre-activations ``(x_b − c)·W[i] + b[i]`` at the selected latents.
  Its forward is given the gathered values (the dense pre-activation matmul runs once, outside
  autograd, because the selection needs it); its backward touches only the selected encoder rows:
  ``∂W[j] = Σ_{(b,k): i_bk = j} g_bk (x_b − c)`` (``embedding_bag`` over the code transposed, see
  :func:`scatter_rows`), ``∂b[j] = Σ_{(b,k): i_bk = j} g_bk`` (``index_add``), and for the centre
  ``∂c = −Σ_j ∂b[j] W[j]``: one pass over ``W`` instead of gathering ``W[i_bk]`` for every slot
  (the per-row ``∂x_b = Σ_k g_bk W[i_bk]``, an ``embedding_bag``, only when ``x`` needs a gradient).
* :func:`sparse_decode` computes ``x̂_b = Σ_k v_bk W_dec[i_bk]`` with ``embedding_bag``; its
  backward is ``∂v_bk = W_dec[i_bk]·g_b`` (:func:`gather_dot`: only the ``B·K`` needed dot products)
  and ``∂W_dec[j] = Σ_{(b,k): i_bk = j} v_bk g_b`` (:func:`scatter_rows`).

Which latents a row uses is chosen on the dense pre-activations; the ``k`` largest (TopK, AuxK,
BatchTopK over the batch) by :func:`topk_indices`, an exact staged search faster than ``torch.topk``
on CPU.

Codes denser than :data:`DENSE_FRACTION` of the dictionary (a ReLU SAE early in training) take a
dense path with identical results, because there the sparse kernels lose.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from interlingua.sae.fused import Fused

DENSE_FRACTION = 1 / 16  # above K / d_sae of this, dense math is faster than gathers on CPU and GPU
GROUP_SIZE = 8  # columns per group in topk_indices' first stage (measured best of 4-128)
_CHUNK_ELEMENTS = 1 << 24  # bound on B·K·d temporaries in a backward pass (64 MiB in float32)


# --------------------------------------------------------------------------------------------
# Selection (no gradients: which latents each row uses)


def pad_rows(mask: Tensor, min_width: int = 1) -> tuple[Tensor, Tensor]:
    """The ``True`` columns of each row of ``mask`` [B, M] as padded ``(indices, valid)`` [B, K].

    ``K`` is the largest count in any row (at least ``min_width``); padding slots have index 0
    and ``valid = False``.
    """
    rows, cols = mask.nonzero(as_tuple=True)
    return _pad(rows, cols, mask.shape[0], min_width)


def _pad(rows: Tensor, cols: Tensor, n_rows: int, min_width: int) -> tuple[Tensor, Tensor]:
    """:func:`pad_rows` from the entries' coordinates, sorted by row."""
    counts = torch.bincount(rows, minlength=n_rows)
    width = max(int(counts.max()) if counts.numel() else 0, min_width)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(rows.numel(), device=rows.device) - starts[rows]
    indices = torch.zeros(n_rows, width, dtype=torch.long, device=rows.device)
    valid = torch.zeros(n_rows, width, dtype=torch.bool, device=rows.device)
    indices[rows, slot] = cols
    valid[rows, slot] = True
    return indices, valid


def _group_max(pre: Tensor, size: int) -> Tensor:
    """Maxima of the strided column groups of ``pre`` [B, n]: group ``j`` holds columns ``j, j + G, …``
    with ``G = n // size`` groups (the ``n mod size`` last columns belong to none). Written as a max
    of column slices because inductor vectorises that form for any ``n``."""
    groups = pre.shape[1] // size
    out = pre[:, :groups]
    for r in range(1, size):
        out = torch.maximum(out, pre[:, r * groups:(r + 1) * groups])
    return out


def topk_indices(pre: Tensor, k: int) -> Tensor:
    """Column indices of the ``k`` largest entries of each row of ``pre`` [B, n] (unordered).

    The same set as ``torch.topk`` (up to ties), found in stages. The columns are dealt into
    strided groups of :data:`GROUP_SIZE`; the ``k`` groups with the largest maxima hold every one of
    the row's ``k`` largest entries (an entry outside them has ``k`` larger group maxima above it),
    and the ``k``-th largest of those maxima is a threshold that at least ``k`` entries reach. So
    the work is one max-reduction over the row (a compiled loop when large), the same search over
    the ``n / 8`` group maxima (recursively), and a final choice among the ``8 k`` entries of the
    chosen groups (and the ``< 8`` columns left over) that reach the threshold — about ``k`` of
    them. ``torch.topk`` on CPU copies each row into (value, index) pairs and runs a heap, or
    ``nth_element`` (~5 ns per entry) when the row is shorter than ``64 k``, as AuxK's search over
    the dead latents is. Measured, bfloat16, [1024, 16384], ``k = 32``: 24 → 15 ms on 1 thread,
    13 → 8-10 ms on 2; ``k = 288`` of 10661 columns: 2x faster. (``torch.topk`` over all ``8 k``
    entries of the chosen groups, without the threshold, was 5-15% slower.)
    """
    b, n = pre.shape
    size = GROUP_SIZE
    if pre.device.type != "cpu" or n < 32 * k or k < 1 or not pre.is_floating_point():
        return torch.topk(pre, k, dim=1, sorted=False).indices
    groups = n // size
    whole = size * groups
    pre = pre if pre.stride(1) == 1 else pre.contiguous()
    torch._dynamo.maybe_mark_dynamic(pre, 0)
    torch._dynamo.maybe_mark_dynamic(pre, 1)  # AuxK searches a different number of columns each step
    maxima = _fused_group_max(pre, size, work=pre.numel(), device=pre.device)
    top_groups = topk_indices(maxima, k)
    threshold = maxima.gather(1, top_groups).amin(1, keepdim=True)
    members = pre.as_strided((b, size, groups), (pre.stride(0), groups, 1))  # column c: group c % groups
    candidates = torch.cat([members.gather(2, top_groups[:, None, :].expand(b, size, k)).view(b, size * k),
                            pre[:, whole:]], 1)
    slots, valid = pad_rows(candidates >= threshold, k)
    scores = candidates.gather(1, slots).masked_fill_(~valid, float("-inf"))
    flat = slots.gather(1, torch.topk(scores, k, dim=1, sorted=False).indices)  # member · k + slot, or a leftover
    grouped = torch.div(flat, k, rounding_mode="floor") * groups + top_groups.gather(1, flat % k)
    return torch.where(flat < size * k, grouped, flat - size * k + whole)


def select_topk(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """TopK: the ``k`` largest pre-activations of each row (all valid)."""
    indices = topk_indices(pre, k)
    return indices, torch.ones_like(indices, dtype=torch.bool)


def select_batch_topk(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """BatchTopK: the ``k · B`` largest positive pre-activations of the whole batch, per row padded."""
    flat = pre.flatten()
    top = topk_indices(flat[None], min(k * pre.shape[0], flat.numel()))[0]
    top = top[flat[top] > 0].sort().values
    n = pre.shape[1]
    return _pad(torch.div(top, n, rounding_mode="floor"), top % n, pre.shape[0], 1)


def select_positive(pre: Tensor) -> tuple[Tensor, Tensor]:
    """ReLU: every positive pre-activation."""
    return pad_rows(pre > 0)


def select_jumprelu(pre: Tensor, threshold: Tensor, bandwidth: float | None) -> tuple[Tensor, Tensor]:
    """JumpReLU: latents above threshold, plus (when training, ``bandwidth`` set) those within the
    straight-through window ``θ − ε/2 < π``, whose threshold gradient is not zero."""
    floor = threshold if bandwidth is None else threshold - bandwidth / 2
    return pad_rows((pre > floor) & (pre > 0))


# --------------------------------------------------------------------------------------------
# Sparse encoder gradient


def _chunks(n_rows: int, per_row: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(per_row, 1))
    return [slice(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]


def scatter_rows(indices: Tensor, weights: Tensor, rows: Tensor, n_out: int) -> Tensor:
    """``out[j] = Σ_{(b,k): indices[b,k] = j} weights[b,k] · rows[b]``, shape ``[n_out, d]``.

    The transpose of an ``embedding_bag``: sort the ``B·K`` slots by latent, then one
    ``embedding_bag`` with a bag per latent sums the weighted batch rows. No ``[B, K, d]``
    temporary is built (``index_add`` of ``weights[..., None] · rows[:, None]`` would build one).
    """
    flat = indices.flatten()
    # stable: torch's default CPU sort of int64 can take ~1000x longer when threads are contended
    order = torch.sort(flat, stable=True).indices
    counts = torch.bincount(flat, minlength=n_out)
    offsets = torch.cumsum(counts, 0) - counts
    return F.embedding_bag(order // indices.shape[1], rows, offsets, mode="sum",
                           per_sample_weights=weights.flatten()[order].to(rows.dtype))


def _gather_dot_math(indices: Tensor, table: Tensor, rows: Tensor) -> Tensor:
    """The formula (for ``torch.compile``, which fuses the gather, product and sum into one loop)."""
    return (table[indices] * rows[:, None, :]).sum(-1)


def gather_dot(indices: Tensor, table: Tensor, rows: Tensor) -> Tensor:
    """``out[b, k] = table[indices[b, k]] · rows[b]`` (``[B, K]``), without a ``[B, K, d]`` temporary.

    Large calls run the formula compiled (one fused loop over the ``B·K`` slots, reading each
    table row where it is used); otherwise a sampled dense-dense matmul (:func:`_gather_dot_sampled`).
    """
    rows = rows.to(table.dtype)
    for t in (indices, rows):  # batch and code width change between calls: compile once for all
        torch._dynamo.maybe_mark_dynamic(t, 0)
    torch._dynamo.maybe_mark_dynamic(indices, 1)
    return _fused_gather_dot(indices, table, rows, work=indices.numel() * table.shape[1], device=table.device)


def _gather_dot_sampled(indices: Tensor, table: Tensor, rows: Tensor) -> Tensor:
    """:func:`gather_dot` as ``rows @ tableᵀ`` evaluated only at the code's sparsity pattern, given to
    ``torch.sparse.sampled_addmm`` as a CSR matrix. CSR wants sorted, distinct columns per row, so
    each row is sorted and repeated columns (padding) are computed once and copied.
    """
    b, k = indices.shape
    if table.dtype not in (torch.float32, torch.float64):
        return _gather_dot_dense(indices, table, rows)
    cols, perm = indices.sort(dim=1, stable=True)
    first = torch.ones_like(cols, dtype=torch.bool)
    first[:, 1:] = cols[:, 1:] != cols[:, :-1]
    crow = torch.zeros(b + 1, dtype=torch.long, device=indices.device)
    crow[1:] = torch.cumsum(first.sum(1), 0)
    with warnings.catch_warnings():  # torch flags every CSR tensor as a beta feature
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, cols[first], torch.zeros(int(crow[-1]), dtype=table.dtype,
                                          device=indices.device), (b, table.shape[0]), check_invariants=False)
    try:
        dots = torch.sparse.sampled_addmm(pattern, rows, table.T, beta=0.0).values()
    except (RuntimeError, NotImplementedError):  # pragma: no cover - backends without SDDMM
        return _gather_dot_dense(indices, table, rows)
    sorted_out = torch.zeros(b, k, dtype=table.dtype, device=table.device)
    sorted_out[first] = dots
    if not bool(first.all()):  # copy each repeated column's value from its first occurrence
        pos = torch.arange(k, device=indices.device).expand(b, k)
        start = torch.cummax(torch.where(first, pos, 0), dim=1).values
        sorted_out = sorted_out.gather(1, start)
    return torch.empty_like(sorted_out).scatter_(1, perm, sorted_out)


def _gather_dot_dense(indices: Tensor, table: Tensor, rows: Tensor) -> Tensor:
    b, k = indices.shape
    out = torch.empty(b, k, dtype=table.dtype, device=table.device)
    for sl in _chunks(b, k * table.shape[1]):
        out[sl] = torch.bmm(table[indices[sl]], rows[sl, :, None]).squeeze(2)
    return out


_fused_gather_dot = Fused(_gather_dot_math, eager=_gather_dot_sampled)
_fused_group_max = Fused(_group_max)


def centred(x: Tensor, centre: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``x − centre`` in ``dtype`` (``x`` itself, cast, without a centre)."""
    x = x.to(dtype)
    return x if centre is None else x - centre.to(dtype)


class _EncodeAt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, centre: Tensor | None, weight: Tensor, bias: Tensor, indices: Tensor,
                gathered: Tensor) -> Tensor:
        ctx.save_for_backward(x, centre, weight, indices)
        ctx.bias_meta = (bias.shape, bias.dtype)
        return gathered.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, centre, weight, indices = ctx.saved_tensors
        grad_x = grad_c = grad_w = grad_b = None
        g = grad.to(weight.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(indices, weight, per_sample_weights=g, mode="sum").to(x.dtype)
        if ctx.needs_input_grad[2]:
            grad_w = scatter_rows(indices, g, centred(x, centre, weight.dtype), weight.shape[0])
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[3]:
            shape, dtype = ctx.bias_meta
            per_latent = torch.zeros(weight.shape[0], dtype=weight.dtype, device=g.device).index_add_(
                0, indices.flatten(), g.flatten())
            if ctx.needs_input_grad[3]:
                grad_b = per_latent.to(dtype).view(shape)
            if ctx.needs_input_grad[1]:
                grad_c = (-(per_latent @ weight)).to(centre.dtype)
        return grad_x, grad_c, grad_w, grad_b, None, None


def encode_at(x: Tensor, weight: Tensor, bias: Tensor, indices: Tensor, gathered: Tensor | None = None,
              centre: Tensor | None = None) -> Tensor:
    """Pre-activations ``(x − centre) · weight[i]ᵀ + bias[i]`` at ``indices`` [B, K], with sparse gradients.

    ``weight`` is ``[d_sae, d_in]`` (one row per latent); ``centre`` [d_in] (optional) is subtracted
    from every row of ``x`` (an SAE's decoder bias). ``gathered`` is the forward value when the
    caller already has it from the dense matmul (the usual case); otherwise it is computed here.
    """
    if indices.shape[1] > DENSE_FRACTION * weight.shape[0]:
        # Dense path: same values, dense gradients (cheaper for dense codes).
        return (centred(x, centre, weight.dtype) @ weight.T + bias).gather(1, indices)
    if gathered is None:
        with torch.no_grad():
            gathered = torch.einsum("bkd,bd->bk", weight[indices], centred(x, centre, weight.dtype)) + bias[indices]
    return _EncodeAt.apply(x, centre, weight, bias, indices, gathered)


# --------------------------------------------------------------------------------------------
# Sparse decoder


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor, indices: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(values, indices, weight)
        return F.embedding_bag(indices, weight, per_sample_weights=values.to(weight.dtype), mode="sum")

    @staticmethod
    def backward(ctx, grad: Tensor):
        values, indices, weight = ctx.saved_tensors
        grad_v = grad_w = None
        g = grad.to(weight.dtype)
        if ctx.needs_input_grad[0]:
            grad_v = gather_dot(indices, weight, g).to(values.dtype)
        if ctx.needs_input_grad[2]:
            grad_w = scatter_rows(indices, values.to(weight.dtype), g, weight.shape[0])
        return grad_v, None, grad_w


def sparse_decode(values: Tensor, indices: Tensor, weight: Tensor) -> Tensor:
    """``Σ_k values[b, k] · weight[indices[b, k]]`` for each row ``b`` (no bias), sparse gradients.

    ``weight`` is the decoder ``[d_sae, d_in]``.
    """
    if indices.shape[1] > DENSE_FRACTION * weight.shape[0]:
        return to_dense(values.to(weight.dtype), indices, weight.shape[0]) @ weight
    return _SparseDecode.apply(values, indices, weight)


def to_dense(values: Tensor, indices: Tensor, d_sae: int) -> Tensor:
    """The dense ``[B, d_sae]`` latent matrix of a code (padding slots hold 0 and add nothing)."""
    out = torch.zeros(values.shape[0], d_sae, dtype=values.dtype, device=values.device)
    return out.scatter_add(1, indices, values)


# --------------------------------------------------------------------------------------------
# JumpReLU with straight-through threshold gradients (Rajamanoharan et al. 2024)


def _window(u: Tensor) -> Tensor:
    """Rectangle kernel ``K(u) = 1[|u| < 1/2]``."""
    return (u.abs() < 0.5).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad * (pre > threshold).to(grad.dtype)
        grad_threshold = -(threshold / eps) * _window((pre - threshold) / eps) * grad
        return grad_pre, grad_threshold, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        return None, -(1.0 / eps) * _window((pre - threshold) / eps) * grad, None


def jumprelu(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """``π · H(π − θ)``; ``∂/∂π = H(π − θ)``, and the pseudo-derivative ``∂/∂θ = −(θ/ε) K((π − θ)/ε)``."""
    return _JumpReLU.apply(pre, threshold, bandwidth)


def step(pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """``H(π − θ)`` (counts for L0); no gradient to ``π``, ``∂/∂θ = −(1/ε) K((π − θ)/ε)``."""
    return _Step.apply(pre, threshold, bandwidth)
