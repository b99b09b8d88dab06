"""`SparseAutoencoder`: one type for TopK, BatchTopK, ReLU + L1 and JumpReLU dictionaries.

Encoding is ``π = (x − b_dec) W_enc + b_enc`` followed by an architecture's activation; decoding is
``x̂ = z W_dec + b_dec`` with unit-norm decoder rows. Latents travel as a :class:`SparseCode`
``(values, indices)``, so the decoder and every gradient work on the selected latents only (see
:mod:`interlingua.sae.kernels`); the one dense operation is the encoder matmul, optionally in
bfloat16.

Weights are stored as in SAELens (``W_enc`` is ``[d_in, d_sae]``, ``W_dec`` is ``[d_sae, d_in]``)
except that the encoder is kept row-per-latent (``encoder`` = ``W_encᵀ``), the layout the sparse
gradient writes into.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from interlingua.errors import InterlinguaError
from interlingua.sae import kernels

ARCHITECTURES = ("topk", "batchtopk", "relu", "jumprelu")


@dataclass
class SAEConfig:
    """What a sparse autoencoder is (enough to rebuild and run it), plus where it came from.

    ``k`` is the number of active latents (TopK: per row; BatchTopK: on average over a batch);
    ``bandwidth`` is JumpReLU's straight-through window ``ε`` in input units; ``provenance`` holds
    free-form JSON (model, hook, data, seed, training settings, version).
    """

    architecture: str
    d_in: int
    d_sae: int
    k: int | None = None
    bandwidth: float = 0.05
    apply_b_dec_to_input: bool = True
    hook_name: str = ""
    model_name: str = ""
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InterlinguaError(f"unknown SAE architecture '{self.architecture}'; choose from "
                                   f"{', '.join(ARCHITECTURES)}.")
        if self.d_in < 1 or self.d_sae < 1:
            raise InterlinguaError(f"d_in and d_sae must be positive (got {self.d_in}, {self.d_sae}).")
        if self.architecture in ("topk", "batchtopk"):
            if self.k is None or not 1 <= self.k <= self.d_sae:
                raise InterlinguaError(f"a {self.architecture} SAE needs 1 ≤ k ≤ d_sae={self.d_sae} (got k={self.k}).")
        if self.bandwidth <= 0:
            raise InterlinguaError(f"bandwidth must be positive (got {self.bandwidth}).")

    def to_dict(self) -> dict:
        return asdict(self)


class SparseCode(NamedTuple):
    """Latent activations as ``values`` and ``indices``, both ``[B, K]``; padding slots hold 0."""

    values: Tensor
    indices: Tensor

    def dense(self, d_sae: int) -> Tensor:
        """The ``[B, d_sae]`` activation matrix."""
        return kernels.to_dense(self.values, self.indices, d_sae)

    def l0(self) -> Tensor:
        """Active latents per row."""
        return (self.values != 0).sum(1)


class Losses(NamedTuple):
    """One training forward pass. ``loss`` is what is minimised; the rest is for logging."""

    loss: Tensor
    fvu: Tensor
    sparsity: Tensor  # L1 (relu), expected L0 (jumprelu) or 0
    auxk: Tensor
    code: SparseCode
    x_hat: Tensor


class SparseAutoencoder(nn.Module):
    """A sparse autoencoder with a sparse ``(values, indices)`` interface.

    ``encode(x)`` → :class:`SparseCode`; ``decode(code)`` → reconstruction; ``forward(x)`` → both
    composed; :meth:`losses` is the training forward pass used by the trainer.
    """

    def __init__(self, cfg: SAEConfig, *, seed: int = 0, threshold_init: float = 0.1, encoder_init_scale: float = 1.0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        dec = torch.randn(cfg.d_sae, cfg.d_in, generator=g, dtype=torch.float32)
        dec /= dec.norm(dim=1, keepdim=True)
        # Encoder initialised as the decoder's transpose (Gao et al. 2024), stored row per latent.
        self.encoder = nn.Parameter((dec * encoder_init_scale).to(dtype=dtype, device=device))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype, device=device))
        self.W_dec = nn.Parameter(dec.to(dtype=dtype, device=device))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype, device=device))
        theta = torch.full((cfg.d_sae,), threshold_init if cfg.architecture == "jumprelu" else 0.0,
                           dtype=dtype, device=device)
        if cfg.architecture == "jumprelu":
            # A raw, directly learned threshold: a log-parameterised one barely moves under Adam.
            self.threshold = nn.Parameter(theta)
        else:
            # BatchTopK's inference threshold (estimated during training); unused otherwise.
            self.register_buffer("threshold", theta)

    # ---- views in SAELens' layout ------------------------------------------------------------

    @property
    def W_enc(self) -> Tensor:
        """The encoder as ``[d_in, d_sae]`` (a view of :attr:`encoder`)."""
        return self.encoder.T

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def architecture(self) -> str:
        return self.cfg.architecture

    # ---- encoding ----------------------------------------------------------------------------

    def _centre(self) -> Tensor | None:
        """What the encoder subtracts from its input (``b_dec``, or nothing)."""
        return self.b_dec if self.cfg.apply_b_dec_to_input else None

    @torch.no_grad()
    def pre_activations(self, x: Tensor, compute_dtype: torch.dtype | None = None) -> Tensor:
        """Dense pre-activations ``π`` [B, d_sae] (no gradient), computed and returned in ``compute_dtype``.

        Selection runs on this matrix in that dtype; the selected values are then taken in the
        weights' dtype by :func:`kernels.encode_at`'s caller.
        """
        xc = kernels.centred(x, self._centre(), self.W_dec.dtype)
        dt = compute_dtype or self.encoder.dtype
        if dt == self.encoder.dtype:
            return torch.addmm(self.b_enc, xc, self.encoder.T)
        # The encoder is copied into ``dt`` anyway; copying the bias in as one more column makes
        # the bias add part of the matmul ([x, 1] · [W, b]ᵀ), which saves addmm's separate pass.
        d = self.d_in
        w = torch.empty(self.d_sae, d + 1, dtype=dt, device=xc.device)
        w[:, :d] = self.encoder
        w[:, d] = self.b_enc
        xa = torch.ones(xc.shape[0], d + 1, dtype=dt, device=xc.device)
        xa[:, :d] = xc
        return xa @ w.T

    def _select(self, pre: Tensor, training: bool) -> tuple[Tensor, Tensor]:
        arch = self.cfg.architecture
        if arch == "topk":
            return kernels.select_topk(pre, self.cfg.k)
        if arch == "batchtopk":
            if training or not bool((self.threshold > 0).all()):
                return kernels.select_batch_topk(pre, self.cfg.k)
            return kernels.select_jumprelu(pre, self.threshold.to(pre.dtype), None)
        if arch == "relu":
            return kernels.select_positive(pre)
        return kernels.select_jumprelu(pre, self.threshold.to(pre.dtype), self.cfg.bandwidth if training else None)

    def _activate(self, pre_sel: Tensor, indices: Tensor, valid: Tensor, training: bool) -> Tensor:
        if self.cfg.architecture == "jumprelu":
            theta = self.threshold[indices]
            act = kernels.jumprelu(pre_sel, theta, self.cfg.bandwidth) if training else \
                pre_sel * (pre_sel > theta).to(pre_sel.dtype)
        else:
            act = torch.relu(pre_sel)
        return act * valid.to(act.dtype)

    def encode(self, x: Tensor, compute_dtype: torch.dtype | None = None) -> SparseCode:
        """Latents of ``x`` [B, d_in] as a :class:`SparseCode` (inference rule: BatchTopK uses its
        learned threshold once it has one)."""
        pre = self.pre_activations(x, compute_dtype)
        indices, valid = self._select(pre, training=False)
        gathered = pre.gather(1, indices).to(self.encoder.dtype)
        pre_sel = kernels.encode_at(x, self.encoder, self.b_enc, indices, gathered, centre=self._centre())
        return SparseCode(self._activate(pre_sel, indices, valid, training=False), indices)

    def decode(self, code: SparseCode) -> Tensor:
        """``x̂ = Σ_k v_k W_dec[i_k] + b_dec``."""
        return kernels.sparse_decode(code.values, code.indices, self.W_dec) + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of ``x`` (any leading shape, last dimension ``d_in``)."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        return self.decode(self.encode(flat)).reshape(shape).to(x.dtype)

    @torch.no_grad()
    def dense_latents(self, x: Tensor) -> Tensor:
        """Latent activations as a dense ``[B, d_sae]`` matrix (for analysis: no gradient)."""
        return self.encode(x).dense(self.d_sae)

    # ---- training ------------------------------------------------------------------------------

    def losses(self, x: Tensor, *, sparsity_coefficient: float = 0.0, dead_mask: Tensor | None = None,
               aux_k: int | None = None, compute_dtype: torch.dtype | None = None) -> Losses:
        """The training forward pass on a batch ``x`` [B, d_in].

        ``loss = FVU + sparsity_coefficient · S + AuxK`` where FVU ``= Σ‖x − x̂‖² / Σ‖x − x̄‖²`` (batch),
        ``S`` is ``E_b Σ_j z_bj / rms`` for ReLU (``rms`` the batch's centred RMS norm, so the
        coefficient has no units) and the expected ``L0`` for JumpReLU (straight-through). For
        TopK / BatchTopK with ``dead_mask`` set, AuxK (Gao et al.) adds the FVU of the top ``aux_k``
        dead latents reconstructing the residual, scaled by ``min(#dead / aux_k, 1)``; the caller
        multiplies it by its coefficient (it is returned separately, not added here).
        """
        x = x.to(self.W_dec.dtype)
        pre = self.pre_activations(x, compute_dtype)
        indices, valid = self._select(pre, training=True)
        width = indices.shape[1]
        aux_idx = None
        n_dead = int(dead_mask.sum()) if dead_mask is not None else 0
        use_aux = self.cfg.architecture in ("topk", "batchtopk") and n_dead > 0 and aux_k
        if use_aux:
            # The top dead latents, searched among the dead columns only (exact; 8x faster than masking
            # the live ones out of the full matrix when 1% are dead, 1.3x when half are).
            dead_cols = dead_mask.nonzero()[:, 0]
            aux_idx = dead_cols[kernels.topk_indices(pre[:, dead_cols], min(aux_k, n_dead))]
            indices_all = torch.cat([indices, aux_idx], 1)
        else:
            indices_all = indices
        gathered = pre.gather(1, indices_all).to(self.encoder.dtype)
        pre_sel = kernels.encode_at(x, self.encoder, self.b_enc, indices_all, gathered, centre=self._centre())
        values = self._activate(pre_sel[:, :width], indices, valid, training=True)
        x_hat = kernels.sparse_decode(values, indices, self.W_dec) + self.b_dec
        err = x - x_hat
        total_var = (x - x.mean(0)).pow(2).sum().clamp_min(torch.finfo(x.dtype).tiny)
        fvu = err.pow(2).sum() / total_var
        zero = fvu.new_zeros(())
        if self.cfg.architecture == "relu":
            rms = (total_var / x.shape[0]).sqrt()
            sparsity = values.sum(1).mean() / rms
        elif self.cfg.architecture == "jumprelu":
            theta = self.threshold[indices]
            sparsity = (kernels.step(pre_sel[:, :width], theta, self.cfg.bandwidth) * valid).sum(1).mean()
        else:
            sparsity = zero
        auxk = zero
        if use_aux:
            aux_vals = torch.relu(pre_sel[:, width:])
            e_hat = kernels.sparse_decode(aux_vals, aux_idx, self.W_dec)
            auxk = min(n_dead / aux_k, 1.0) * (e_hat - err.detach()).pow(2).sum() / total_var
        loss = fvu + sparsity_coefficient * sparsity
        return Losses(loss=loss, fvu=fvu, sparsity=sparsity, auxk=auxk,
                      code=SparseCode(values.detach(), indices), x_hat=x_hat.detach())

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Scale decoder rows to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.W_dec.dtype).eps))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Project out the component of each decoder row's gradient along the row (which the unit-norm
        constraint would undo anyway)."""
        if self.W_dec.grad is None:
            return
        parallel = torch.linalg.vecdot(self.W_dec.grad, self.W_dec)
        self.W_dec.grad.addcmul_(parallel[:, None], self.W_dec, value=-1.0)

    @torch.no_grad()
    def fold_input_scale_(self, scale: float) -> None:
        """Make an SAE trained on ``scale · x`` act on ``x``: biases, threshold and bandwidth ÷ scale.

        Exact for every architecture here: the activations are positively homogeneous and the
        selections scale-invariant, so the codes become ``z / scale`` and ``x̂ / scale``.
        """
        self.b_enc.div_(scale)
        self.b_dec.div_(scale)
        self.threshold.div_(scale)
        self.cfg.bandwidth = self.cfg.bandwidth / scale

    @torch.no_grad()
    def update_batchtopk_threshold_(self, code: SparseCode, momentum: float = 0.99) -> None:
        """BatchTopK's inference threshold: a running mean of the smallest selected activation."""
        positive = code.values[code.values > 0]
        if positive.numel() == 0:
            return
        smallest = positive.min().to(self.threshold.dtype)
        if bool((self.threshold <= 0).all()):
            self.threshold.fill_(smallest)
        else:
            self.threshold.mul_(momentum).add_(smallest * (1 - momentum))

    @torch.no_grad()
    def init_b_dec_(self, x: Tensor) -> None:
        """Decoder bias at the data mean, so that pre-activations start centred."""
        self.b_dec.copy_(x.to(self.b_dec.dtype).mean(0))

    def extra_repr(self) -> str:
        k = f", k={self.cfg.k}" if self.cfg.k else ""
        return f"{self.cfg.architecture}, d_in={self.d_in}, d_sae={self.d_sae}{k}"
