"""Concept detection on the bundled models: every built-in concept, AUROC next to its nulls.

    python benchmarks/concepts.py [--models smollm2-135m gemma3-270m] [--concepts a b ...]
                                  [--method logistic] [--dtype auto] [--json out.json]

For each model and concept: the layer chosen on validation, AUROC on test and OOD, the
shuffled-label and random-direction nulls, and difference-of-means AUROC at the same layer
(the AxBench reference method: mean 0.94 on Gemma-2). Baseline named in the same run: a
bag-of-words logistic regression on the same splits, which order-sensitive concepts must defeat.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import torch

from interlingua.concepts import builtin_names, find_concept, load_concept
from interlingua.concepts.methods import logistic_probe
from interlingua.metrics import auroc
from interlingua.models import DTYPE_CHOICES, auto_dtype, load_model


def bag_of_words_auroc(ds) -> tuple[float, float | None]:
    """Test and OOD AUROC of a logistic regression on word counts fitted on train."""
    tr = ds.split("train")
    vocab: dict[str, int] = {}
    for t in tr.texts:
        for w in re.findall(r"\w+|[^\w\s]", t.lower()):
            vocab.setdefault(w, len(vocab))

    def feats(texts):
        x = torch.zeros(len(texts), len(vocab))
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+|[^\w\s]", t.lower()):
                if w in vocab:
                    x[i, vocab[w]] += 1
        return x

    r = logistic_probe(feats(tr.texts), tr.labels, l2=1e-1)
    out = []
    for s in ("test", "ood"):
        if s in ds.splits:
            d = ds.split(s)
            out.append(auroc(r(feats(d.texts)), d.labels))
        else:
            out.append(None)
    return out[0], out[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    p.add_argument("--concepts", nargs="+", default=None)
    p.add_argument("--method", default="logistic")
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                   help="model dtype (default auto: bfloat16 where this CPU runs it natively, else float32)")
    p.add_argument("--json", help="write all results here")
    args = p.parse_args()
    if args.dtype == "auto":
        print(f"--dtype auto is {auto_dtype().reason}")
    names = args.concepts or builtin_names()
    datasets = {n: load_concept(n) for n in names}
    bow = {n: bag_of_words_auroc(ds) for n, ds in datasets.items()}
    results = []
    for model_name in args.models:
        model = load_model(model_name, dtype=args.dtype)
        dtype = str(model.dtype).removeprefix("torch.")
        print(f"\n{model_name} ({dtype}, {args.method}; layer chosen on validation; dom = diff-of-means at that layer)")
        print(f"{'concept':<24}{'kind':<16}{'layer':>6}{'test':>7}{'ood':>7}{'dom':>7}{'shuf':>7}"
              f"{'rand':>7}{'bow':>7}{'bow_ood':>8}{'sec':>6}")
        for n, ds in datasets.items():
            t0 = time.perf_counter()
            c = find_concept(model, ds, method=args.method, n_boot=200, n_null=10)
            m = c.metrics
            row = [r for r in c.provenance["sweep"] if r["hook"] == c.hook][0]
            rec = {"model": model_name, "dtype": dtype, "concept": n, "kind": ds.kind, **{k: v for k, v in m.items()},
                   "dom_test_same_layer": row["diff_of_means_test"], "bow_test": bow[n][0], "bow_ood": bow[n][1],
                   "seconds": round(time.perf_counter() - t0, 1)}
            results.append(rec)
            fmt = lambda v: f"{v:7.3f}" if isinstance(v, float) else f"{'-':>7}"  # noqa: E731
            print(f"{n:<24}{ds.kind or '-':<16}{m['layer']:>6}{fmt(m['auroc_test'])}{fmt(m['auroc_ood'])}"
                  f"{fmt(row['diff_of_means_test'])}{fmt(m['auroc_shuffled_labels'])}"
                  f"{fmt(m['auroc_random_direction'])}{fmt(bow[n][0])}{fmt(bow[n][1]):>8}{rec['seconds']:>6}")
        for kind in ("lexical", "contextual", "order-sensitive"):
            sel = [r for r in results if r["model"] == model_name and r["kind"] == kind]
            if sel:
                mean = lambda k: sum(r[k] for r in sel if r[k] is not None) / max(1, sum(r[k] is not None for r in sel))  # noqa: E731
                print(f"  mean over {kind} ({len(sel)}): test {mean('auroc_test'):.3f}, ood {mean('auroc_ood'):.3f}, "
                      f"dom {mean('dom_test_same_layer'):.3f}, bag-of-words {mean('bow_test'):.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
