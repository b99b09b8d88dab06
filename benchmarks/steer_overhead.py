"""Cost of steering during generation: steered vs unsteered ``generate()`` in one run.

    python benchmarks/steer_overhead.py [--model smollm2-135m] [--tokens 32] [--prompts 8] [--repeats 2]

Runs greedy generation of the same prompts unsteered and under 1 and 3 interventions (add at
``resid_post``, with the per-call position tracking that makes ``positions="generated"`` correct
under the KV cache), in ABBA order so that drift on a shared machine cancels, and prints the time
ratio steered / unsteered. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import torch

from interlingua.models import load_model
from interlingua.steer import add, generate
from interlingua.steer.evaluate import DEFAULT_PROMPTS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    prompts = [DEFAULT_PROMPTS[i % len(DEFAULT_PROMPTS)] for i in range(args.prompts)]
    g = torch.Generator().manual_seed(0)
    n = model.n_layers
    vecs = [torch.randn(model.d_model, generator=g) for _ in range(3)]
    configs = {
        "unsteered": [],
        "1 add (generated)": [add(vecs[0], 0.25, hook=f"resid_post.{n // 2}", positions="generated")],
        "3 adds (all)": [add(v, 0.1, hook=f"resid_post.{n // 4 * (i + 1)}") for i, v in enumerate(vecs)],
    }
    for ivs in configs.values():  # typical norms measured and memoised outside the timing
        generate(model, prompts[:1], interventions=ivs, max_new_tokens=1)
    times = {k: [] for k in configs}
    order = list(configs) + list(reversed(configs))
    for _ in range(args.repeats):
        for name in order:
            t0 = time.perf_counter()
            generate(model, prompts, interventions=configs[name], max_new_tokens=args.tokens)
            times[name].append(time.perf_counter() - t0)
    base = sum(times["unsteered"]) / len(times["unsteered"])
    print(f"{model.name}: {args.prompts} prompts × {args.tokens} new tokens, greedy, {args.threads} thread(s)")
    for name, ts in times.items():
        mean = sum(ts) / len(ts)
        print(f"  {name:<20} {mean:7.2f} s   ratio to unsteered {mean / base:5.3f}")


if __name__ == "__main__":
    main()
