"""Sparse autoencoders: train fast on the sparse path, evaluate, save in SAELens' layout, match latents
across models.

* :class:`SparseAutoencoder` (TopK, BatchTopK, ReLU + L1, JumpReLU) with a sparse
  ``(values, indices)`` interface — :mod:`interlingua.sae.model`, numerics in :mod:`interlingua.sae.kernels`;
* :func:`save_sae` / :func:`load_sae` — SAELens' ``cfg.json`` + ``sae_weights.safetensors``.
"""

from interlingua.sae.files import load_sae, save_sae
from interlingua.sae.model import ARCHITECTURES, SAEConfig, SparseAutoencoder, SparseCode

__all__ = ["ARCHITECTURES", "SAEConfig", "SparseAutoencoder", "SparseCode", "load_sae", "save_sae"]
