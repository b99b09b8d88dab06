"""SAE files in SAELens' layout: a directory with ``cfg.json`` and ``sae_weights.safetensors``.

Tensors use SAELens' names and shapes: ``W_enc`` [d_in, d_sae], ``W_dec`` [d_sae, d_in],
``b_enc`` [d_sae], ``b_dec`` [d_in] and, for JumpReLU, ``threshold`` [d_sae]. ``cfg.json`` holds
the fields SAELens 6 reads (``architecture``, ``d_in``, ``d_sae``, ``dtype``, ``device``,
``apply_b_dec_to_input``, ``normalize_activations``, ``reshape_activations``, ``k`` for TopK,
``metadata`` with ``model_name`` and ``hook_name``), plus ``hook_name`` at the top level for older
readers. interlingua's own record (true architecture, bandwidth, provenance) rides in
``metadata.interlingua``, which SAELens keeps but ignores.

A BatchTopK SAE is saved as SAELens does it: as a JumpReLU whose threshold is the learned global
one, which is its inference rule. Loading goes through safetensors and JSON only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interlingua import _io
from interlingua.errors import InterlinguaError
from interlingua.sae.model import SAEConfig, SparseAutoencoder

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
# The SAELens config generation this layout follows (SAELens reads older ones through a converter).
SAELENS_FORMAT_VERSION = "6.0.0"
_SAELENS_ARCH = {"topk": "topk", "batchtopk": "jumprelu", "relu": "standard", "jumprelu": "jumprelu"}
_FROM_SAELENS = {"topk": "topk", "standard": "relu", "jumprelu": "jumprelu", "batchtopk": "batchtopk"}


def saelens_config(sae: SparseAutoencoder) -> dict:
    """The ``cfg.json`` content for ``sae``."""
    from interlingua import __version__

    cfg = sae.cfg
    arch = _SAELENS_ARCH[cfg.architecture]
    out = {
        "architecture": arch,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "hook_name": cfg.hook_name,
    }
    if arch == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    out["metadata"] = {
        "sae_lens_version": SAELENS_FORMAT_VERSION,
        "sae_lens_training_version": None,
        "model_name": cfg.model_name,
        "hook_name": cfg.hook_name,
        "hook_head_index": None,
        "prepend_bos": True,
        "interlingua": {
            "version": __version__,
            "architecture": cfg.architecture,
            "k": cfg.k,
            "bandwidth": cfg.bandwidth,
            "provenance": cfg.provenance,
        },
    }
    return out


def save_sae(sae: SparseAutoencoder, path: str | Path) -> Path:
    """Write ``sae`` to the directory ``path`` (replaced atomically) and return it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InterlinguaError(f"{path} is a file; an SAE is saved as a directory.")
    tensors = {
        "W_enc": sae.W_enc.detach().contiguous(),
        "W_dec": sae.W_dec.detach(),
        "b_enc": sae.b_enc.detach(),
        "b_dec": sae.b_dec.detach(),
    }
    if sae.cfg.architecture in ("jumprelu", "batchtopk"):
        tensors["threshold"] = sae.threshold.detach()
    with _io.atomic_dir(path) as tmp:
        _io.write_safetensors(tmp / WEIGHTS_FILE, tensors, {"format": "pt"})
        _io.write_json(tmp / CFG_FILE, saelens_config(sae))
    return path


def _config_from_dict(raw: dict, path: Path) -> SAEConfig:
    meta = raw.get("metadata") or {}
    ours = meta.get("interlingua") if isinstance(meta, dict) else None
    if raw.get("normalize_activations", "none") not in ("none", None, False):
        raise InterlinguaError(
            f"{path}: normalize_activations={raw['normalize_activations']!r} is not supported; fold the "
            "scaling into the weights in SAELens first (sae.fold_activation_norm_scaling_factor)."
        )
    if raw.get("reshape_activations", "none") != "none":
        raise InterlinguaError(f"{path}: reshape_activations={raw['reshape_activations']!r} is not supported.")
    if ours:
        arch, k, bandwidth, provenance = ours["architecture"], ours.get("k"), ours.get("bandwidth", 0.05), \
            ours.get("provenance", {})
    else:
        name = raw.get("architecture", "standard")
        if name not in _FROM_SAELENS:
            raise InterlinguaError(f"{path}: SAELens architecture '{name}' is not supported; interlingua "
                                   f"reads {', '.join(sorted(_FROM_SAELENS))}.")
        arch, k, bandwidth, provenance = _FROM_SAELENS[name], raw.get("k"), 0.05, {"loaded_from": str(path)}
        if raw.get("rescale_acts_by_decoder_norm"):
            provenance["rescale_acts_by_decoder_norm"] = True
    return SAEConfig(
        architecture=arch, d_in=int(raw["d_in"]), d_sae=int(raw["d_sae"]), k=k, bandwidth=float(bandwidth),
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        hook_name=str(raw.get("hook_name") or meta.get("hook_name") or raw.get("hook_point") or ""),
        model_name=str(raw.get("model_name") or meta.get("model_name") or ""),
        provenance=provenance,
    )


def load_sae(path: str | Path, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load an SAE directory written by :func:`save_sae` or by SAELens (standard, TopK, JumpReLU)."""
    path = _io.recover_dir(path)  # a kill while it was being replaced leaves a complete copy aside
    cfg_path, weights_path = path / CFG_FILE, path / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights_path.is_file():
        raise InterlinguaError(f"{path} is not an SAE directory (expected {CFG_FILE} and {WEIGHTS_FILE}).")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InterlinguaError(f"{cfg_path} is not valid JSON: {exc}.") from None
    if not isinstance(raw, dict):
        raise InterlinguaError(f"{cfg_path} holds no SAE configuration (a JSON object is expected).")
    try:
        cfg = _config_from_dict(raw, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise InterlinguaError(f"{cfg_path} is not a usable SAE configuration ({type(exc).__name__}: {exc}); "
                               "it needs d_in, d_sae and the architecture.") from None
    remedy = "Train the SAE again (interlingua sae train) or download it again."
    with _io.open_safetensors(weights_path, remedy) as fh:
        tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    _io.check_finite(tensors, weights_path, remedy)
    missing = [n for n in ("W_enc", "W_dec", "b_enc", "b_dec") if n not in tensors]
    if cfg.architecture in ("jumprelu", "batchtopk") and "threshold" not in tensors:
        missing.append("threshold")
    if missing:
        raise InterlinguaError(f"{weights_path} lacks tensors {missing}.")
    expected = {"W_enc": (cfg.d_in, cfg.d_sae), "W_dec": (cfg.d_sae, cfg.d_in), "b_enc": (cfg.d_sae,),
                "b_dec": (cfg.d_in,), "threshold": (cfg.d_sae,)}
    for name, shape in expected.items():
        if name in tensors and tuple(tensors[name].shape) != shape:
            raise InterlinguaError(f"{weights_path}: {name} has shape {tuple(tensors[name].shape)}, "
                                   f"expected {shape} for d_in={cfg.d_in}, d_sae={cfg.d_sae}.")
    dtype = tensors["W_dec"].dtype
    sae = SparseAutoencoder(cfg, dtype=dtype, device=device)
    with torch.no_grad():
        sae.encoder.copy_(tensors["W_enc"].T)
        sae.W_dec.copy_(tensors["W_dec"])
        sae.b_enc.copy_(tensors["b_enc"])
        sae.b_dec.copy_(tensors["b_dec"])
        if "threshold" in tensors and cfg.architecture in ("jumprelu", "batchtopk"):
            sae.threshold.copy_(tensors["threshold"])
    if cfg.provenance.get("rescale_acts_by_decoder_norm"):
        norms = sae.W_dec.detach().norm(dim=1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
            raise InterlinguaError(f"{path}: a TopK SAE with rescale_acts_by_decoder_norm and non-unit decoder "
                                   "rows is not supported; fold the decoder norm in SAELens first.")
    return sae
