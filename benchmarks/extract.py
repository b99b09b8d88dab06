"""Tokens/s of interlingua extraction vs a plain transformers forward pass on the same batches.

Usage: .venv/bin/python benchmarks/extract.py [--models smollm2-135m gemma3-270m]
       [--dtype auto|float32|bfloat16] [--docs 12] [--repeats 3] [--batch-tokens 4096] [--json out.json]

For each model the test-split documents are tokenized and grouped into length-sorted batches
once, exactly as :func:`interlingua.activations.extract` does. Then, in every repeat and in
this order, the script times

* ``baseline``: the full CausalLM on those padded batches, ``output_hidden_states=True``,
  ``use_cache=False``, under ``torch.inference_mode()`` (logits and all hidden states);
* ``extract`` at an early (``resid_post.{n//6}``), middle (``resid_post.{n//2}``) and the
  last (``resid_post.{n-1}``) layer: the public :func:`interlingua.activations.extract` on
  the same texts, which builds the same batches and stops after the requested block.

Tokens are real (non-pad) tokens. The ratio is baseline time / extract time within the same
repeat; the table shows medians over the repeats, after a warm-up round on the 2 shortest documents.
``ideal`` is n_layers / (layer + 1); ``ideal+head`` also credits the skipped LM head
(vocab × d_model multiply-adds per token) against the blocks' parameters per token.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

import interlingua
from interlingua.activations import _batches, _tokenize, extract
from interlingua.data import load_corpus
from interlingua.models import DTYPE_CHOICES, LoadedModel, auto_dtype, load_model, resolve_dtype
from interlingua.models.hooks import find_layers

DEFAULT_MODELS = ("smollm2-135m", "gemma3-270m")
WARMUP_DOCS = 2


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class Row:
    model: str
    dtype: str
    hook: str
    layer: int | None
    tokens: int
    seconds: float
    tok_per_s: float
    ratio: float
    ratio_cpu: float
    ideal: float | None
    ideal_with_head: float | None
    seconds_all: list[float]
    cpu_seconds_all: list[float]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pick_texts(n_docs: int) -> list[str]:
    """``n_docs`` test-split documents spread evenly over the split (so over all books)."""
    docs = load_corpus("test")
    step = max(1, len(docs) // n_docs)
    return docs[::step][:n_docs]


def build_batches(model: LoadedModel, texts: Sequence[str], batch_tokens: int) -> list[Batch]:
    """The padded batches that ``extract`` runs: same tokenization, grouping and right padding."""
    ids = _tokenize(model, texts, max_tokens=None).ids
    pad = model.tokenizer.pad_token_id
    batches = []
    for group in _batches([len(x) for x in ids], range(len(ids)), batch_tokens):
        rows = [ids[d] for d in group]
        width = max(len(x) for x in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, x in enumerate(rows):
            input_ids[r, : len(x)] = torch.tensor(x)
            mask[r, : len(x)] = 1
        batches.append(Batch(input_ids.to(model.device), mask.to(model.device)))
    return batches


def run_baseline(model: LoadedModel, batches: Sequence[Batch]) -> int:
    with torch.inference_mode():
        for b in batches:
            model.model(input_ids=b.input_ids, attention_mask=b.attention_mask,
                        output_hidden_states=True, use_cache=False)
    return sum(b.n_tokens for b in batches)


def run_extract(model: LoadedModel, texts: Sequence[str], hook: str, batch_tokens: int) -> int:
    return len(extract(model, texts, [hook], batch_tokens=batch_tokens))


def timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, tokens processed)."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, n


def ideal_ratios(model: LoadedModel, layer: int) -> tuple[float, float]:
    """(n_layers / (layer+1), the same counting the LM head as extra work the baseline does)."""
    n = model.n_layers
    per_block = sum(p.numel() for p in find_layers(model.model)[0].parameters())
    head = model.vocab_size * model.d_model
    return n / (layer + 1), (n * per_block + head) / ((layer + 1) * per_block)


def bench_model(name: str, dtype: str, n_docs: int, repeats: int, batch_tokens: int) -> list[Row]:
    model = load_model(name, dtype=dtype)
    n = model.n_layers
    texts = pick_texts(n_docs)
    batches = build_batches(model, texts, batch_tokens)
    n_tokens = sum(b.n_tokens for b in batches)
    widths = [tuple(b.input_ids.shape) for b in batches]
    print(f"\n{name}: {n} layers, d_model {model.d_model}, vocab {model.vocab_size}, {model.dtype}; "
          f"{len(texts)} docs, {n_tokens} tokens, batches (docs × width) {widths}", flush=True)

    layers = {"early": n // 6, "mid": n // 2, "last": n - 1}
    hooks = {label: f"resid_post.{layer}" for label, layer in layers.items()}
    paths: dict[str, Callable[[Sequence[str], Sequence[Batch]], int]] = {
        "baseline": lambda t, b: run_baseline(model, b),
        **{label: (lambda t, b, h=h: run_extract(model, t, h, batch_tokens)) for label, h in hooks.items()},
    }

    warm_texts = sorted(texts, key=len)[:WARMUP_DOCS]  # the shortest: warm-up is not measured
    warm_batches = build_batches(model, warm_texts, batch_tokens)
    for fn in paths.values():
        fn(warm_texts, warm_batches)

    seconds: dict[str, list[float]] = {label: [] for label in paths}
    cpu_seconds: dict[str, list[float]] = {label: [] for label in paths}
    for rep in range(repeats):
        for label, fn in paths.items():
            wall, cpu, got = timed(lambda: fn(texts, batches))
            if got != n_tokens:
                raise RuntimeError(f"{label} processed {got} tokens, expected {n_tokens}")
            seconds[label].append(wall)
            cpu_seconds[label].append(cpu)
        print(f"  repeat {rep + 1}/{repeats}: "
              + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in seconds.items()), flush=True)

    rows = []
    for label, secs in seconds.items():
        layer = layers.get(label)
        med = statistics.median(secs)
        ratio = statistics.median(b / s for b, s in zip(seconds["baseline"], secs))
        ratio_cpu = statistics.median(b / s for b, s in zip(cpu_seconds["baseline"], cpu_seconds[label]))
        ideal, ideal_head = ideal_ratios(model, layer) if layer is not None else (None, None)
        rows.append(Row(model=name, dtype=dtype, hook=hooks.get(label, "baseline (full CausalLM)"),
                        layer=layer, tokens=n_tokens, seconds=med, tok_per_s=n_tokens / med,
                        ratio=ratio, ratio_cpu=ratio_cpu, ideal=ideal, ideal_with_head=ideal_head,
                        seconds_all=secs, cpu_seconds_all=cpu_seconds[label]))
    return rows


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def print_table(rows: Sequence[Row]) -> None:
    head = (f"{'model':<14} {'dtype':<9} {'hook':<26} {'tokens':>7} {'seconds':>8} {'tok/s':>8} "
            f"{'ratio':>6} {'cpu ratio':>9} {'ideal':>6} {'ideal+head':>10}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r.model:<14} {r.dtype:<9} {r.hook:<26} {r.tokens:>7} {r.seconds:>8.2f} "
              f"{r.tok_per_s:>8.0f} {r.ratio:>5.2f}x {r.ratio_cpu:>8.2f}x "
              f"{_fmt(r.ideal):>6} {_fmt(r.ideal_with_head):>10}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="model dtype (default auto: bfloat16 where this CPU runs it natively, else float32)")
    parser.add_argument("--docs", type=int, default=12,
                        help="test-split documents, spread over the split (default 12: about 4 min "
                             "for both models on 2 CPU cores in float32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.dtype == "auto":
        print(f"--dtype auto is {auto_dtype().reason}")
    args.dtype = str(resolve_dtype(args.dtype)).removeprefix("torch.")  # rows and JSON name the real dtype

    env = {
        "interlingua": interlingua.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(" | ".join(f"{k} {v}" for k, v in env.items()))
    print(f"docs {args.docs}, repeats {args.repeats}, batch_tokens {args.batch_tokens}, dtype {args.dtype}")

    rows: list[Row] = []
    for name in args.models:
        rows += bench_model(name, args.dtype, args.docs, args.repeats, args.batch_tokens)
    print_table(rows)
    print("\nratio = baseline wall seconds / path wall seconds in the same repeat (median over repeats); "
          ">1 means faster than the full forward pass.\ncpu ratio = the same with this process's CPU "
          "seconds (less sensitive to other load on the machine).\nideal = n_layers/(layer+1); "
          "ideal+head also counts the LM head the baseline computes.")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": [asdict(r) for r in rows]}, indent=2))
        print(f"wrote {args.json}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other processes on the machine make the timings noisy)")


if __name__ == "__main__":
    main()
