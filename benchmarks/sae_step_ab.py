"""A/B timing of one change to the SAE training step, in one process.

Usage: .venv/bin/python benchmarks/sae_step_ab.py PATCH.py [--steps 40] [--arch topk] [--dead-after N]

On a shared 2-core machine, run-to-run noise (±10%) hides the 1-5% changes a step is made of.
Here two identical trainers step alternately on the same batches (alternating which goes first);
trainer B runs every step inside the patch, so both see the same machine state. ``PATCH.py``
defines ``enter()`` and ``exit()``, e.g. swapping ``interlingua.sae.kernels.topk_indices`` for the
old implementation and back. Prints the median step of each, B/A, the median of per-step B/A, and
both trainers' held-out FVU (a patch that changes numerics shows there).

Data: the benchmark tensor of ``sae_train.py`` (SmolLM2 ``resid_post.14``). ``--dead-after 4096``
makes most latents dead after a few steps, so AuxK runs (the regime of long training runs).
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import time

import torch

from interlingua.sae.data import TensorSource
from interlingua.sae.train import TrainConfig, Trainer
from sae_train import activations, fvu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("patch", help="a Python file defining enter() and exit()")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--arch", default="topk")
    p.add_argument("--dead-after", type=int, help="vectors without firing before a latent counts as dead")
    args = p.parse_args()
    patch = runpy.run_path(args.patch)
    train, held = activations(14, 26624, 4096, "cpu")
    extra = {} if args.dead_after is None else {"dead_after": args.dead_after}
    cfg = TrainConfig(architecture=args.arch, d_sae=16384, k=32, batch_size=1024, seed=0,
                      total_vectors=1024 * (args.steps + args.warmup), **extra)
    trainers = [Trainer(TensorSource(train), cfg), Trainer(TensorSource(train), cfg)]
    times: list[list[float]] = [[], []]
    batches = train.split(1024)
    for i in range(args.steps + args.warmup):
        batch = {"x": batches[i % len(batches)]}
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            if which == 1:
                patch["enter"]()
            try:
                start = time.perf_counter()
                trainers[which].train_step(batch)
                elapsed = time.perf_counter() - start
            finally:
                if which == 1:
                    patch["exit"]()
            if i >= args.warmup:
                times[which].append(elapsed)
    a, b = (statistics.median(t) for t in times)
    pairwise = statistics.median(tb / ta for ta, tb in zip(*times))
    print(f"A {a * 1e3:.1f} ms  B (patched) {b * 1e3:.1f} ms  B/A {b / a:.3f}  median per-step B/A {pairwise:.3f}")
    with torch.no_grad():
        fvus = [fvu(held, torch.cat([t.export()["x"](c) for c in held.split(1024)])) for t in trainers]
    print(f"held-out FVU  A {fvus[0]:.4f}  B {fvus[1]:.4f}")


if __name__ == "__main__":
    main()
