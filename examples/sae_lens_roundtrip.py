"""Round trip between interlingua and the real SAELens package, output for output.

Usage: python examples/sae_lens_roundtrip.py [--json]      (needs `sae_lens` importable next to interlingua)

1. interlingua → SAELens: an SAE of every architecture (TopK, BatchTopK, ReLU, JumpReLU) is
   trained briefly on planted-feature data, saved with ``interlingua.sae.save_sae`` and loaded with
   ``sae_lens.SAE.load_from_disk``; latents (``encode``) and reconstructions (``forward``) of both
   libraries are compared on the same inputs.
2. SAELens → interlingua: SAELens' own inference SAEs (standard, topk, jumprelu) with random
   weights are written with ``save_model`` and read with ``interlingua.sae.load_sae``; compared
   the same way.

Installing sae-lens must not replace the project's torch. One way that keeps the main environment
untouched (sae-lens pulls transformer-lens, datasets, wandb, …)::

    .venv/bin/python -m venv /tmp/saelens-venv
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \\
        > /tmp/saelens-venv/lib/python3.11/site-packages/_main_venv.pth
    /tmp/saelens-venv/bin/pip install sae-lens        # torch is already satisfied: not reinstalled
    /tmp/saelens-venv/bin/pip list | grep -i '^torch '   # still the project's torch
    /tmp/saelens-venv/bin/python examples/sae_lens_roundtrip.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from interlingua.sae import SparseAutoencoder, load_sae, save_sae
from interlingua.sae.data import TensorSource
from interlingua.sae.train import TrainConfig, train_sae
from interlingua.toy.data import planted_features

D_IN, D_SAE = 32, 128


def _compare(ours: SparseAutoencoder, theirs, x: torch.Tensor) -> dict:
    with torch.no_grad():
        z_ours = ours.dense_latents(x)
        z_theirs = theirs.encode(x)
        y_ours, y_theirs = ours(x), theirs(x)
    return {
        "max_abs_latent_diff": float((z_ours - z_theirs).abs().max()),
        "same_active_latents": bool(torch.equal(z_ours > 0, z_theirs > 0)),
        "max_abs_reconstruction_diff": float((y_ours - y_theirs).abs().max()),
        "reconstruction_scale": float(y_ours.abs().max()),
        "l0": float((z_ours > 0).sum(1).float().mean()),
    }


def interlingua_to_saelens(sae_lens, x: torch.Tensor, root: Path) -> dict:
    pf = planted_features(dim=D_IN, n_features=64, expected_active=4, seed=0)
    data, _ = pf.sample(20_000, torch.Generator().manual_seed(1))
    out = {}
    for arch in ("topk", "batchtopk", "relu", "jumprelu"):
        cfg = TrainConfig(architecture=arch, d_sae=D_SAE, k=4, batch_size=256, total_vectors=25_600, lr=3e-3,
                          compute_dtype="float32", sparsity_coefficient={"relu": 0.3, "jumprelu": 0.01}.get(arch))
        sae = train_sae(TensorSource(data, hook="blocks.0.hook_resid_post"), cfg,
                        provenance={"model": "planted-features"}).saes["blocks.0.hook_resid_post"]
        path = save_sae(sae, root / f"ours_{arch}")
        theirs = sae_lens.SAE.load_from_disk(str(path))
        out[arch] = {"saelens_class": type(theirs).__name__, **_compare(sae, theirs, x)}
    return out


def saelens_to_interlingua(sae_lens, x: torch.Tensor, root: Path) -> dict:
    torch.manual_seed(0)
    made = {
        "standard": sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=D_IN, d_sae=D_SAE)),
        "topk": sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=6)),
        "jumprelu": sae_lens.JumpReLUSAE(sae_lens.JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE)),
    }
    out = {}
    for name, theirs in made.items():
        with torch.no_grad():  # random, non-trivial weights (SAELens initialises some of them to zero)
            for p in theirs.parameters():
                p.copy_(torch.randn_like(p) * (0.3 if p.ndim == 2 else 0.1))
            if name == "jumprelu":
                theirs.threshold.copy_(torch.rand_like(theirs.threshold) * 0.3)
        path = root / f"theirs_{name}"
        theirs.save_model(str(path))
        ours = load_sae(path)
        out[name] = {"interlingua_architecture": ours.architecture, **_compare(ours, theirs, x)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        import sae_lens
    except ImportError:
        print("sae_lens is not importable here; see the instructions at the top of this file.", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    x = planted_features(dim=D_IN, n_features=64, expected_active=4, seed=0).sample(
        512, torch.Generator().manual_seed(7))[0] + 0.05 * torch.randn(512, D_IN, generator=torch.Generator().manual_seed(8))
    with tempfile.TemporaryDirectory() as tmp:
        result = {"sae_lens_version": sae_lens.__version__, "torch": torch.__version__,
                  "interlingua_to_saelens": interlingua_to_saelens(sae_lens, x, Path(tmp)),
                  "saelens_to_interlingua": saelens_to_interlingua(sae_lens, x, Path(tmp))}
    ok = all(r["same_active_latents"] and r["max_abs_latent_diff"] < 1e-4 and r["max_abs_reconstruction_diff"] < 1e-4
             for side in ("interlingua_to_saelens", "saelens_to_interlingua") for r in result[side].values())
    result["all_match"] = ok
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"sae-lens {result['sae_lens_version']}, torch {result['torch']}")
        for side in ("interlingua_to_saelens", "saelens_to_interlingua"):
            for arch, r in result[side].items():
                kind = r.get("saelens_class") or r.get("interlingua_architecture")
                print(f"  {side:<24} {arch:<10} → {kind:<12} latents max |Δ| {r['max_abs_latent_diff']:.2e} "
                      f"(same active set: {r['same_active_latents']}), reconstruction max |Δ| "
                      f"{r['max_abs_reconstruction_diff']:.2e} (of {r['reconstruction_scale']:.2f}), L0 {r['l0']:.1f}")
        print("all outputs match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
