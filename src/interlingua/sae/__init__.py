"""Sparse autoencoders: train fast on the sparse path, evaluate, save in SAELens' layout, match latents
across models.

* :class:`SparseAutoencoder` (TopK, BatchTopK, ReLU + L1, JumpReLU) with a sparse
  ``(values, indices)`` interface — :mod:`~interlingua.sae.model`, numerics in
  :mod:`~interlingua.sae.kernels`;
* :func:`save_sae` / :func:`load_sae` — SAELens' ``cfg.json`` + ``sae_weights.safetensors``
  (:mod:`~interlingua.sae.files`);
* :class:`Trainer` / :func:`train_sae` with :class:`TrainConfig` — one SAE per hook point from an
  activation cache, a model streamed on the fly or tensors in memory (:mod:`~interlingua.sae.data`),
  checkpointed and resumable exactly (:mod:`~interlingua.sae.train`, optimiser in
  :mod:`~interlingua.sae.optim`);
* :mod:`~interlingua.sae.evaluate` — FVU, L0, dead/dense, shrinkage, spliced CE/KL, top snippets;
* :mod:`~interlingua.sae.match` — latent matching across models on aligned words, with nulls.

The ``interlingua sae train|eval|match`` commands live in :mod:`~interlingua.sae.cli`.
"""

from interlingua.sae.files import load_sae, save_sae
from interlingua.sae.model import ARCHITECTURES, SAEConfig, SparseAutoencoder, SparseCode
from interlingua.sae.train import TrainConfig, Trainer, TrainResult, train_sae

__all__ = ["ARCHITECTURES", "SAEConfig", "SparseAutoencoder", "SparseCode", "TrainConfig", "TrainResult", "Trainer",
           "load_sae", "save_sae", "train_sae"]
