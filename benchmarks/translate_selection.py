"""How well does a label-free criterion choose B's hook and λ? Every candidate readout, judged in hindsight.

    python benchmarks/translate_selection.py [--concepts a b ...] [--corpus-docs 60] [--json out.json]

For each built-in concept and direction A → B (label-free shared text: bundled-corpus
documents only), A's score at the aligned words is fitted by ridge at *every* candidate hook of
B and every λ. Each candidate gets the two cross-validated criteria the readout selection can
use (``RidgeCV``: R² and Spearman's ρ of out-of-fold scores with A's, over folds of whole
documents) and, in hindsight, its fidelity on the concept's test and OOD texts. The summary
prints the fidelity of the readout each criterion would choose, next to the best candidate in
hindsight (an upper bound no label-free rule can claim) — which says how much of a translation's
error is the choice of layer and how much is the shared text.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from interlingua.activations import Reader
from interlingua.concepts import builtin_names, find_concept, load_concept
from interlingua.models import DTYPE_CHOICES, load_model
from interlingua.translate.pairs import paired_words
from interlingua.translate.readout import LAMBDAS, RidgeCV, transfer_readouts
from interlingua.translate.shared_text import build_shared_text
from interlingua.translate.translate import TranslateConfig, _eval_splits, default_layers, source_scores

MODELS = ("smollm2-135m", "gemma3-270m")
CRITERIA = ("cv_r2", "cv_rho", "hindsight")


def candidates(a, b, concept_a, ds, shared, readers, grids) -> list[dict]:
    """Every (hook of B, λ) with its cross-validated criteria and its test / OOD fidelity."""
    hooks_a = sorted({f"resid_post.{i}" for i in grids[a.name]} | {concept_a.hook}, key=a.hook)
    hooks_b = [f"resid_post.{i}" for i in grids[b.name]]
    pairs = paired_words(a, b, shared.texts, hooks_a, hooks_b, reader_a=readers[a.name], reader_b=readers[b.name])
    splits, _ = _eval_splits(concept_a, ds, readers[a.name], readers[b.name], hooks_b, None, TranslateConfig(n_boot=10))
    train = ds.split("train")
    x_train = readers[a.name].read(train.texts, concept_a.hook)[concept_a.hook]
    score_a = source_scores(concept_a, pairs.a[concept_a.hook], pairs.doc, shared, train, x_train)
    groups = torch.tensor(shared.groups)[pairs.doc]
    sel = RidgeCV({h: pairs.b[h] for h in hooks_b}, groups, lams=LAMBDAS).select(score_a)
    out = []
    for h, hook in enumerate(hooks_b):
        for li, lam in enumerate(LAMBDAS):
            readout = transfer_readouts(pairs.b[hook], score_a, lam=lam)[0]
            row = {"hook": hook, "lam": lam, "cv_r2": float(sel.cv_r2[h, li, 0]), "cv_rho": float(sel.cv_rho[h, li, 0])}
            for name, split in splits.items():
                row[f"fidelity_{name}"] = round(split.fidelity(readout(split.xb[hook]).double()), 4)
            out.append(row)
    return out


def chosen(cands: list[dict], criterion: str) -> dict:
    key = "fidelity_test" if criterion == "hindsight" else criterion
    return max(cands, key=lambda c: c[key] if c[key] == c[key] else -1.0)


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for kind in (None, "lexical", "contextual", "order-sensitive"):
        rs = [r for r in rows if kind is None or r["kind"] == kind]
        if not rs:
            continue
        for crit in CRITERIA:
            picks = [chosen(r["candidates"], crit) for r in rs]
            stats = {}
            for split in ("test", "ood"):
                vals = [p.get(f"fidelity_{split}") for p in picks]
                vals = [v for v in vals if v is not None and v == v]
                stats[split] = (round(statistics.mean(vals), 3), round(statistics.median(vals), 3)) if vals else None
            out.append({"kind": kind or "all", "criterion": crit, "translations": len(rs),
                        "fidelity_test_mean_median": stats["test"], "fidelity_ood_mean_median": stats["ood"]})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concepts", nargs="+", default=None, help="built-in concepts (default: all)")
    p.add_argument("--corpus-docs", type=int, default=60)
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES)
    p.add_argument("--json", help="write every candidate and the summary here")
    args = p.parse_args()
    models = [load_model(n, dtype=args.dtype) for n in MODELS]
    readers = {m.name: Reader(m) for m in models}
    grids = {m.name: default_layers(m) for m in models}
    shared = build_shared_text(corpus_docs=args.corpus_docs)
    rows = []
    for name in args.concepts or builtin_names():
        ds = load_concept(name)
        native = {m.name: find_concept(m, ds, layers=grids[m.name], n_boot=50, n_null=4, reader=readers[m.name])
                  for m in models}
        for a, b in ((models[0], models[1]), (models[1], models[0])):
            cands = candidates(a, b, native[a.name], ds, shared, readers, grids)
            rows.append({"concept": name, "kind": ds.kind, "source": a.name, "target": b.name, "candidates": cands})
            picks = {c: chosen(cands, c) for c in CRITERIA}
            print(f"{name:<24}{a.name[:5]}→{b.name[:5]}  " + "  ".join(
                f"{c}: {p['hook']} λ{p['lam']:g} fid {p['fidelity_test']:.3f}/{p.get('fidelity_ood', float('nan')):.3f}"
                for c, p in picks.items()), flush=True)
    summ = summary(rows)
    for s in summ:
        print(json.dumps(s))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summ, "settings": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
