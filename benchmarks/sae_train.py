"""SAE training speed: interlingua vs EleutherAI's sparsify on the same activation tensor.

Usage: .venv/bin/python benchmarks/sae_train.py [--steps 24] [--warmup 2] [--latents 16384] [--k 32]
       [--batch 1024] [--layer 14] [--held-out 4096] [--device cpu|cuda] [--json] [--out results.json]

Data: the real SmolLM2-135M residual stream (``resid_post.{layer}``, d=576) on bundled-corpus
documents (train split), position 0 (attention sink) and >10× median-norm rows dropped, cached as
safetensors under the interlingua cache. ``--held-out`` rows from test-split documents are kept
aside for FVU.

Both trainers are built in one process and step on the *same* batches, alternating which goes
first, so they see the same machine load:

* ``interlingua``: :class:`interlingua.sae.train.Trainer` with its defaults (TopK, Adam, warm-up
  then decay sized to this run, AuxK, bf16 encoder matmul where the CPU/GPU supports it) driven
  through ``Trainer.train_step``;
* ``sparsify``: the installed ``eai-sparsify`` package, driven the way its ``Trainer.fit`` drives a
  ``SparseCoder`` for ``loss_fn="fvu"`` with its defaults: b_dec at the first batch's mean,
  ``set_decoder_norm_to_unit_norm()`` before every forward, ``forward(x, y=x)``, FVU backward,
  ``remove_gradient_parallel_to_decoder_directions()``, ``ScheduleFreeWrapper(SignSGD, momentum=0.95)``
  at ``5e-3 / sqrt(latents / 2**14)``, fired-latent bookkeeping. (``Trainer.fit`` itself needs a
  model and a token dataset; its package ``__init__`` imports ``datasets``, which is not installed,
  so the submodules are imported directly — the code that runs is the package's own.)

Reported: vectors/s of each (batch / median step time over the timed steps), their ratio, held-out
FVU of each after the same number of vectors (sparsify evaluated with its schedule-free averaged
weights, as its checkpoints are), and the achieved GFLOP/s of an interlingua step counting the
encoder matmul (2·B·d·m, the only dense work) against a dense matmul of the same shape measured in
the same run, in the dtype the step uses and in float32. Also a floor for the step: that matmul at
the measured peak plus the optimizer's unavoidable memory traffic (7 float32 passes over each of the
two d×m matrices) at the copy bandwidth measured in the same run; ``floor_fraction`` is floor / step.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch

import interlingua
from interlingua.models import DTYPE_CHOICES
from interlingua.sae.data import TensorSource
from interlingua.sae.train import TrainConfig, Trainer


# --------------------------------------------------------------------------------------------
# Data


def activations(layer: int, n_train: int, n_held: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """SmolLM2 ``resid_post.{layer}`` rows: ``n_train`` from train-split documents, ``n_held`` from test."""
    from safetensors.torch import load_file

    from interlingua import _io
    from interlingua.models import cache_dir

    path = cache_dir() / "bench" / f"sae_smollm2_resid_post{layer}_{n_train}_{n_held}.safetensors"
    if path.is_file():
        t = load_file(str(path))
        return t["train"], t["held"]
    from interlingua.activations import extract, outlier_mask
    from interlingua.data.corpus import load_corpus
    from interlingua.models import load_model

    model = load_model("smollm2-135m", dtype="float32")
    if device == "cuda":
        model.model.to("cuda")
    hook = f"resid_post.{layer}"
    out = {}
    for split, need in (("train", n_train), ("held", n_held)):
        docs = load_corpus("train" if split == "train" else "test")
        rows, got, i = [], 0, 0
        while got < need:
            acts = extract(model, docs[i:i + 32], hook, skip_first=1, max_tokens=512, progress=True)
            x = acts[hook].float().cpu()
            x = x[~outlier_mask(x.norm(dim=1))]
            rows.append(x)
            got += len(x)
            i += 32
        out[split] = torch.cat(rows)[:need]
    _io.write_safetensors(path, out)
    return out["train"], out["held"]


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


# --------------------------------------------------------------------------------------------
# The two trainers, one step at a time


class Ours:
    name = "interlingua"

    def __init__(self, train: torch.Tensor, args):
        cfg = TrainConfig(architecture="topk", d_sae=args.latents, k=args.k, batch_size=args.batch,
                          total_vectors=args.batch * (args.steps + args.warmup), lr=args.lr, seed=0,
                          compute_dtype=args.compute_dtype)
        self.trainer = Trainer(TensorSource(train), cfg, device=args.device)
        self.dtype = self.trainer.compute_dtype

    def step(self, batch: torch.Tensor) -> None:
        self.trainer.train_step({"x": batch})

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        sae = self.trainer.export()["x"]
        return torch.cat([sae(c) for c in x.split(1024)])


def import_sparsify():
    """sparsify's modules without its package ``__init__`` (which imports ``datasets`` for the LM trainer)."""
    spec = importlib.util.find_spec("sparsify")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("eai-sparsify is not installed: pip install --no-deps eai-sparsify einops natsort "
                         "simple-parsing schedulefree docstring-parser")
    pkg = types.ModuleType("sparsify")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("sparsify", pkg)
    import contextlib
    from importlib.metadata import version

    from schedulefree import ScheduleFreeWrapper

    with contextlib.redirect_stdout(sys.stderr):  # it prints which decoder kernel it uses; keep stdout JSON
        from sparsify.config import SparseCoderConfig
        from sparsify.sign_sgd import SignSGD
        from sparsify.sparse_coder import SparseCoder

    return SparseCoder, SparseCoderConfig, SignSGD, ScheduleFreeWrapper, version("eai-sparsify")


class Sparsify:
    name = "sparsify"

    def __init__(self, train: torch.Tensor, args):
        SparseCoder, SparseCoderConfig, SignSGD, ScheduleFreeWrapper, self.version = import_sparsify()
        torch.manual_seed(0)
        self.sae = SparseCoder(train.shape[1], SparseCoderConfig(num_latents=args.latents, k=args.k),
                               args.device, dtype=torch.float32)
        lr = 5e-3 / (self.sae.num_latents / (2**14)) ** 0.5  # its default for signum
        self.opt = ScheduleFreeWrapper(SignSGD([{"params": self.sae.parameters(), "lr": lr}]), momentum=0.95)
        self.opt.train()
        self.since_fired = torch.zeros(self.sae.num_latents, dtype=torch.long, device=args.device)
        self.first = True

    def step(self, x: torch.Tensor) -> None:
        sae = self.sae
        if self.first:
            sae.b_dec.data = x.mean(0).to(sae.dtype)
            self.first = False
        sae.set_decoder_norm_to_unit_norm()
        total_variance = (x - x.mean(0)).pow(2).sum()
        out = sae(x=x, y=x, dead_mask=None, total_variance=total_variance)
        did_fire = torch.zeros(sae.num_latents, dtype=torch.bool, device=x.device)
        did_fire[out.latent_indices.flatten()] = True
        out.fvu.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        self.opt.step()
        self.opt.zero_grad()
        with torch.no_grad():
            self.since_fired += x.shape[0]
            self.since_fired[did_fire] = 0

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.opt.eval()  # schedule-free: evaluate the averaged weights, as sparsify's checkpoints do
        self.sae.set_decoder_norm_to_unit_norm()
        out = torch.cat([self.sae(c).sae_out for c in x.split(1024)])
        self.opt.train()
        return out


# --------------------------------------------------------------------------------------------
# Peak


def matmul_gflops(b: int, d: int, m: int, dtype: torch.dtype, device: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` GFLOP/s of ``[b, d] @ [d, m]`` (the encoder's shape)."""
    x = torch.randn(b, d, device=device).to(dtype)
    w = torch.randn(m, d, device=device).to(dtype)
    return 2 * b * d * m / _best_seconds(lambda: x @ w.T, device, repeats) / 1e9


def copy_gbps(n_bytes: int, device: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` memory bandwidth of copying ``n_bytes`` (bytes read + written per second)."""
    a = torch.empty(n_bytes // 4, device=device)
    b = torch.ones_like(a)
    return 2 * n_bytes / _best_seconds(lambda: a.copy_(b), device, repeats) / 1e9


def _best_seconds(fn, device: str, repeats: int) -> float:
    """Fastest of ``repeats + 1`` timed calls of ``fn`` (the first one, usually slowest, rarely wins)."""
    best = math.inf
    for _ in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=24, help="timed steps per trainer")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (they count toward the vectors)")
    p.add_argument("--latents", type=int, default=16384)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--layer", type=int, default=14)
    p.add_argument("--held-out", type=int, default=4096)
    p.add_argument("--train-rows", type=int, help="extract only this many training rows and cycle over them "
                                                    "(default: one fresh row per training vector)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--lr", type=float, help="interlingua's learning rate (default: its own default)")
    p.add_argument("--compute-dtype", default="auto", choices=DTYPE_CHOICES,
                   help="interlingua's encoder-matmul dtype (sparsify computes in float32 on CPU)")
    p.add_argument("--threads", type=int, help="torch threads for both trainers (default: torch's choice)")
    p.add_argument("--only", choices=["interlingua", "sparsify"], help="time one trainer alone")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", help="also write the JSON result here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    n_steps = args.steps + args.warmup
    n_rows = args.train_rows or n_steps * args.batch
    train, held = activations(args.layer, n_rows, args.held_out, args.device)
    train, held = train.to(args.device), held.to(args.device)
    gen = torch.Generator().manual_seed(0)
    per_epoch = len(train) // args.batch
    batches = []
    for _ in range(-(-n_steps // per_epoch)):  # epochs over the rows, reshuffled, when they are fewer than needed
        order = torch.randperm(len(train), generator=gen)
        batches += [train[order[i * args.batch:(i + 1) * args.batch]] for i in range(per_epoch)]
    batches = batches[:n_steps]

    runners = [cls(train, args) for cls in (Ours, Sparsify) if args.only in (None, cls.name)]
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    first: dict[str, float] = {}
    for step, batch in enumerate(batches):
        for r in (runners if step % 2 == 0 else runners[::-1]):
            _sync(args.device)
            t = time.perf_counter()
            r.step(batch)
            _sync(args.device)
            if step >= args.warmup:
                times[r.name].append(time.perf_counter() - t)
            elif step == 0:
                first[r.name] = time.perf_counter() - t  # includes one-time set-up (e.g. compiling)
        if not args.json:
            print(f"step {step + 1}/{n_steps}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items() if t),
                  file=sys.stderr)

    d, m, b = train.shape[1], args.latents, args.batch
    ours = next((r for r in runners if r.name == "interlingua"), None)
    step_dtype = ours.dtype if ours else torch.float32
    peak = {str(dt).removeprefix("torch."): matmul_gflops(b, d, m, dt, args.device)
            for dt in {torch.float32, step_dtype}}
    result: dict = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "interlingua": interlingua.__version__,
        "data": f"SmolLM2-135M resid_post.{args.layer}, d={d}, {len(train)} train / {len(held)} held-out rows",
        "latents": m, "k": args.k, "batch": b, "timed_steps": args.steps, "vectors": n_steps * b,
        "epochs": round(n_steps * b / len(train), 2),
        "peak_gflops": {k: round(v, 1) for k, v in peak.items()},
    }
    for r in runners:
        med = statistics.median(times[r.name])
        key = "" if r.name == "interlingua" else "sparsify_"
        result[f"{key}vectors_per_s"] = round(b / med, 1)
        result[f"{key}step_s_median"] = round(med, 4)
        result[f"{key}first_step_s"] = round(first.get(r.name, math.nan), 2)
        result[f"{key}fvu"] = round(fvu(held, r.reconstruct(held)), 4)
    if ours:
        achieved = 2 * b * d * m / result["step_s_median"] / 1e9
        result["compute_dtype"] = str(step_dtype).removeprefix("torch.")
        result["achieved_gflops"] = round(achieved, 1)
        result["roofline_fraction"] = round(achieved / peak[result["compute_dtype"]], 3)
        result["roofline_fraction_vs_float32_peak"] = round(achieved / peak["float32"], 3)
        # A floor for the whole step: the encoder matmul at the peak plus the optimizer's memory
        # traffic (read y, g, z, v and write y, z, v of both d×m matrices in float32) at copy bandwidth.
        gbps = copy_gbps(4 * d * m, args.device)
        floor_s = 2 * b * d * m / (peak[result["compute_dtype"]] * 1e9) + 2 * 7 * 4 * d * m / (gbps * 1e9)
        result["copy_gbps"] = round(gbps, 1)
        result["step_floor_s"] = round(floor_s, 4)
        result["floor_fraction"] = round(floor_s / result["step_s_median"], 3)
    if len(runners) == 2:
        result["ratio"] = round(result["vectors_per_s"] / result["sparsify_vectors_per_s"], 2)
        result["sparsify_version"] = runners[1].version
        per_step = [s / o for o, s in zip(times["interlingua"], times["sparsify"])]
        result["ratio_median_per_step"] = round(statistics.median(per_step), 2)
    result["platform"] = platform.platform()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return result


def _print(r: dict) -> None:
    print(f"{r['data']}; {r['latents']} latents, k={r['k']}, batch {r['batch']}, {r['vectors']} vectors each "
          f"({r['timed_steps']} timed steps) on {r['device']} ({r['threads']} threads, load {r['load_average']})")
    if "vectors_per_s" in r:
        print(f"  interlingua: {r['vectors_per_s']:>8.0f} vectors/s   held-out FVU {r['fvu']:.4f}   "
              f"encoder matmul in {r['compute_dtype']}")
    if "sparsify_vectors_per_s" in r:
        print(f"  sparsify:    {r['sparsify_vectors_per_s']:>8.0f} vectors/s   held-out FVU {r['sparsify_fvu']:.4f}")
    if "ratio" in r:
        print(f"  ratio: {r['ratio']:.2f}× (median of per-step ratios {r['ratio_median_per_step']:.2f}×)")
    if "achieved_gflops" in r:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in r["peak_gflops"].items())
        print(f"  step: {r['achieved_gflops']:.0f} GFLOP/s (encoder matmul FLOPs) = {r['roofline_fraction']:.0%} of "
              f"the {r['compute_dtype']} matmul peak ({peaks} GFLOP/s measured now; "
              f"{r['roofline_fraction_vs_float32_peak']:.0%} of the float32 one)")
        print(f"  floor: matmul at that peak + optimizer traffic at {r['copy_gbps']:.0f} GB/s copy bandwidth = "
              f"{r['step_floor_s'] * 1e3:.0f} ms; the step takes {r['step_s_median'] * 1e3:.0f} ms "
              f"({r['floor_fraction']:.0%} of the way to that floor)")


if __name__ == "__main__":
    main()
