"""Translation on the bundled models: every built-in concept, both directions, label-free and with concept texts.

    python benchmarks/translate.py [--concepts a b ...] [--corpus-docs 60] [--generate 0]
                                   [--variants label_free concept_texts] [--draws 200] [--json out.json]
    python benchmarks/translate.py --curve --concepts sentiment [--generate-grid 0 50 100 200] [--plot curve.png]

For each concept and direction A → B, and for each variant of the shared text (``label_free``:
corpus documents and, with ``--generate``, text A writes in the concept's generative mode;
``concept_texts``: the same plus the concept's train texts, scored by A out-of-fold), it prints
native A and B AUROC (test / OOD), fidelity to A, the translated readout's label AUROC, recovery
with its paired bootstrap interval, the bag-of-words baseline on the same split, every control's
p-value (or interval) and verdict, and seconds.

Cost, measured in the same run: for the first translation, the time of one paired forward pass
over its shared text (both models, fresh readers) and the time of the whole translation from
fresh readers (native B found inside, every control), and their ratio. The other translations
share one activation reader per model, as the demo does, so their seconds are what a batch of
translations costs.

``--curve`` translates one concept with 0, 50, 100, … generated texts (label-free) and with the
concept texts, and prints (and with ``--plot``, draws) fidelity and label AUROC against the
number of generated documents.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

from interlingua.activations import Reader
from interlingua.concepts import builtin_names, find_concept, load_concept
from interlingua.models import DTYPE_CHOICES, load_model
from interlingua.translate import TranslateConfig, translate_concept
from interlingua.translate.pairs import align_pair
from interlingua.translate.shared_text import build_shared_text
from interlingua.translate.translate import default_layers

MODELS = ("smollm2-135m", "gemma3-270m")
VARIANTS = ("label_free", "concept_texts")


def _f(v) -> str:
    return "  n/a" if v is None else f"{v:5.3f}" if isinstance(v, float) else str(v)


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f},{ci[1]:.2f}]"


def row_of(tr, variant: str, seconds: float, native_a, kind: str) -> dict:
    m = tr.to_json()  # the flat keys
    t, o = m["test"], m["ood"] or {}
    return {
        "concept": m["concept"], "kind": kind, "source": m["source"], "target": m["target"], "variant": variant,
        "target_hook": m["target_hook"], "shared_text": m["shared_text"],
        "auroc_native_source_test": native_a.metrics.auroc_test, "auroc_native_source_ood": native_a.metrics.auroc_ood,
        "auroc_native_target": m["auroc_native_target"], "auroc_native_target_ood": m["auroc_native_target_ood"],
        "fidelity_test": m["fidelity_test"], "fidelity_test_ci": m["fidelity_test_ci"],
        "fidelity_ood": m["fidelity_ood"], "fidelity_ood_ci": m["fidelity_ood_ci"],
        "rank_correlation_test": m["rank_correlation_test"], "rank_correlation_ood": m["rank_correlation_ood"],
        "auroc_transfer_test": m["auroc_transfer_test"], "auroc_transfer_ood": m["auroc_transfer_ood"],
        "recovery_test": m["recovery_test"], "recovery_test_ci": m["recovery_test_ci"],
        "recovery_ood": m["recovery_ood"], "recovery_ood_ci": m["recovery_ood_ci"],
        "recovery_note": t.get("recovery_note"),
        "auroc_bag_of_words_test": m["auroc_bag_of_words_test"], "auroc_bag_of_words_ood": m["auroc_bag_of_words_ood"],
        "controls": {n: {k: getattr(c, k) for k in ("kind", "statistic", "value", "p_value", "difference_ci", "passed")}
                     for n, c in tr.controls.items()},
        "lam": m["selection"]["lam"], "seconds": round(seconds, 1), "cost": m["cost"],
        "fidelity_ood_undefined": o.get("fidelity_undefined"),
    }


def print_row(r: dict) -> None:
    ctrl = " ".join(f"{n.split('_')[0]}:{'ok' if c['passed'] else 'FAIL'}"
                    + (f"(p={c['p_value']:.3f})" if c.get("p_value") is not None else "") for n, c in r["controls"].items())
    print(f"{r['concept']:<24}{r['source'][:5]}→{r['target'][:5]} {r['variant']:<13} "
          f"A {_f(r['auroc_native_source_test'])}/{_f(r['auroc_native_source_ood'])}  "
          f"B {_f(r['auroc_native_target'])}/{_f(r['auroc_native_target_ood'])}  "
          f"fid {_f(r['fidelity_test'])}{_ci(r['fidelity_test_ci'])}/{_f(r['fidelity_ood'])}  "
          f"auc {_f(r['auroc_transfer_test'])}/{_f(r['auroc_transfer_ood'])}  "
          f"rec {_f(r['recovery_test'])}{_ci(r['recovery_test_ci'])}/{_f(r['recovery_ood'])}  "
          f"bow {_f(r['auroc_bag_of_words_test'])}/{_f(r['auroc_bag_of_words_ood'])}  {ctrl}  {r['seconds']:.0f}s",
          flush=True)


def paired_forward_seconds(models, texts, hooks) -> float:
    """One paired forward pass over ``texts``: both models at the aligned words, fresh readers."""
    t0 = time.perf_counter()
    al = align_pair(models[0], models[1], texts)
    Reader(models[0]).read(al.texts, hooks[0], al.token_index["source"])
    Reader(models[1]).read(al.texts, hooks[1], al.token_index["target"])
    return time.perf_counter() - t0


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return None if not xs else xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


SOURCE_DETECTS = 0.8  # A's own test AUROC from which a translation has something to carry


def stats(rs: list[dict]) -> dict:
    """Medians over translations ``rs`` (undefined values left out, their count kept) and the must-fail tally."""
    must = [c for r in rs for c in r["controls"].values() if c["kind"] == "must_fail"]
    out = {"translations": len(rs)}
    for key in ("fidelity_test", "fidelity_ood", "auroc_transfer_test", "auroc_transfer_ood", "recovery_test",
                "recovery_ood"):
        values = [r[key] for r in rs if r[key] is not None]
        out[f"median_{key}"] = median(values)
        out[f"defined_{key}"] = len(values)
    out["must_fail_passed"] = f"{sum(c['passed'] for c in must)}/{len(must)}"
    passes = [all(c["passed"] for c in r["controls"].values() if c["kind"] == "must_fail") for r in rs]
    out["all_must_fail_passed"] = sum(passes)
    out["meets_goal"] = sum(ok and (r["fidelity_test"] or 0) >= 0.9 and (r["recovery_test"] or 0) >= 0.9
                            for r, ok in zip(rs, passes))
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Per variant: every translation, by concept kind, and where A detects the concept (test AUROC ≥ 0.8)."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        rs = [r for r in rows if r["variant"] == variant]
        groups = {"all": rs, **{k: [r for r in rs if r["kind"] == k] for k in dict.fromkeys(r["kind"] for r in rs)},
                  f"A detects (test AUROC >= {SOURCE_DETECTS})":
                      [r for r in rs if (r["auroc_native_source_test"] or 0) >= SOURCE_DETECTS]}
        out += [{"variant": variant, "subset": name, **stats(g)} for name, g in groups.items() if g]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--concepts", nargs="+", default=None, help="built-in concepts (default: all)")
    p.add_argument("--directions", nargs="+", default=["a2b", "b2a"], choices=["a2b", "b2a"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--corpus-docs", type=int, default=60)
    p.add_argument("--generate", type=int, default=0, help="texts A writes per concept (generative mode)")
    p.add_argument("--controls", default="shuffled_pairing,label_shuffle,synthetic_target")
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES)
    p.add_argument("--curve", action="store_true", help="fidelity and AUROC against the number of generated texts")
    p.add_argument("--generate-grid", type=int, nargs="+", default=[0, 50, 100, 200, 400])
    p.add_argument("--plot", help="with --curve: write the curve as a PNG here (needs matplotlib)")
    p.add_argument("--no-cost", action="store_true", help="skip the standalone cost measurement")
    p.add_argument("--json", help="write every row and the summary here")
    p.add_argument("--md", help="write the table and the summary as Markdown here")
    p.add_argument("--from-json", help="only re-render --md (and the summary) from the rows of an earlier --json")
    args = p.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        rows = saved["rows"]
        summary = summarise([r for r in rows if "refused" not in r])
        for s in summary:
            print(json.dumps(s))
        if args.md:
            with open(args.md, "w") as f:
                f.write(markdown(rows, summary, saved.get("cost"), saved["settings"].get("dtype_used", "")))
        return

    models = tuple(load_model(n, dtype=args.dtype) for n in MODELS)
    print(f"models {MODELS[0]} and {MODELS[1]} ({models[0].dtype}); corpus docs {args.corpus_docs}, generated "
          f"{args.generate}, controls {args.controls}, {args.draws} null draws", flush=True)
    readers = {m.name: Reader(m) for m in models}
    grids = {m.name: default_layers(m) for m in models}
    config = TranslateConfig(corpus_docs=args.corpus_docs, controls=tuple(args.controls.split(",")), draws=args.draws)
    concepts = args.concepts or builtin_names()
    rows, cost = [], None
    if args.curve:
        return curve(args, models, readers, grids, config, concepts[0])
    settings = {**vars(args), "dtype_used": str(models[0].dtype).removeprefix("torch.")}
    if args.json and os.path.exists(args.json):  # a killed run goes on where it stopped
        with open(args.json) as f:
            saved = json.load(f)
        rows, cost = saved["rows"], saved.get("cost")
        print(f"resuming {args.json}: {len(rows)} rows already measured", flush=True)
    done_keys = {(r["concept"], r["source"], r["variant"]) for r in rows}
    for name in concepts:
        ds = load_concept(name)
        wanted = [(d, a, v) for d, a in zip(("a2b", "b2a"), MODELS) for v in args.variants if d in args.directions]
        if all((name, a, v) in done_keys for _, a, v in wanted):
            continue
        native = {m.name: find_concept(m, ds, layers=grids[m.name], n_boot=200, n_null=8, reader=readers[m.name])
                  for m in models}
        pairs = [(models[0], models[1]), (models[1], models[0])]
        for direction, (a, b) in zip(("a2b", "b2a"), pairs):
            if direction not in args.directions:
                continue
            generated = []
            if args.generate:
                from interlingua.steer.generative import concept_texts

                generated = concept_texts(a, native[a.name], args.generate, description=ds.description, seed=0)
            for variant in args.variants:
                if (name, a.name, variant) in done_keys:
                    continue
                cfg = replace(config, layers_a=grids[a.name], layers_b=grids[b.name],
                              concept_texts=variant == "concept_texts")
                if cost is None and not args.no_cost:
                    cost = standalone_cost(a, b, ds, native[a.name], cfg, generated)
                    print(f"cost: one paired forward pass over the shared text {cost['paired_forward_seconds']:.0f} s, "
                          f"over the concept's texts {cost['concept_texts_forward_seconds']:.0f} s; the whole translation "
                          f"from fresh readers {cost['translation_seconds']:.0f} s (ratio {cost['ratio']:.2f} to the "
                          f"shared text, {cost['ratio_to_all_reads']:.2f} to both)", flush=True)
                t0 = time.perf_counter()
                try:
                    tr = translate_concept(native[a.name], a, b, ds, cfg, generated=generated,
                                           native_b=native[b.name], reader_a=readers[a.name],
                                           reader_b=readers[b.name])
                except Exception as exc:  # a concept A detects at chance is refused; say so and go on
                    print(f"{name:<24}{a.name[:5]}→{b.name[:5]} {variant:<13} refused: {exc}", flush=True)
                    rows.append({"concept": name, "source": a.name, "target": b.name, "variant": variant,
                                 "refused": str(exc)})
                    _save(args.json, rows, cost, settings)
                    continue
                r = row_of(tr, variant, time.perf_counter() - t0, native[a.name], ds.kind)
                rows.append(r)
                print_row(r)
                _save(args.json, rows, cost, settings)
    done = [r for r in rows if "refused" not in r]
    summary = summarise(done)
    for s in summary:
        print(json.dumps(s))
    _save(args.json, rows, cost, settings, summary)
    if args.md:
        with open(args.md, "w") as f:
            f.write(markdown(rows, summary, cost, models[0].dtype))


def _save(path: str | None, rows, cost, settings, summary=None) -> None:
    """Write the rows so far atomically, so a killed run resumes from them (rerun the same command)."""
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"rows": rows, "summary": summary, "cost": cost, "settings": settings}, f, indent=1)
    os.replace(tmp, path)


MD_HEADER = ("| concept | kind | direction | variant | B hook | native A test / OOD | native B test / OOD | "
             "fidelity test | fidelity OOD | AUROC transfer test / OOD | recovery test | recovery OOD | "
             "bag of words test / OOD | shuffled pairing p | label shuffle p | synthetic B* | s |\n|" + "---|" * 17)


def md_row(r: dict) -> str:
    if "refused" in r:
        return f"| {r['concept']} | | {r['source']} → {r['target']} | {r['variant']} | refused: {r['refused']} |"
    c = r["controls"]

    def ctrl(name):
        x = c.get(name)
        if x is None:
            return "–"
        v = f"p={x['p_value']:.3g}" if x.get("p_value") is not None else f"{_f(x.get('value'))}"
        return f"{v} {'ok' if x['passed'] else '**FAIL**'}"

    return (f"| {r['concept']} | {r['kind']} | {r['source']} → {r['target']} | {r['variant']} | {r['target_hook']} | "
            f"{_f(r['auroc_native_source_test'])} / {_f(r['auroc_native_source_ood'])} | "
            f"{_f(r['auroc_native_target'])} / {_f(r['auroc_native_target_ood'])} | "
            f"{_f(r['fidelity_test'])}{_ci(r['fidelity_test_ci'])} | {_f(r['fidelity_ood'])}{_ci(r['fidelity_ood_ci'])} | "
            f"{_f(r['auroc_transfer_test'])} / {_f(r['auroc_transfer_ood'])} | "
            f"{_f(r['recovery_test'])}{_ci(r['recovery_test_ci'])} | {_f(r['recovery_ood'])}{_ci(r['recovery_ood_ci'])} | "
            f"{_f(r['auroc_bag_of_words_test'])} / {_f(r['auroc_bag_of_words_ood'])} | {ctrl('shuffled_pairing')} | "
            f"{ctrl('label_shuffle')} | {ctrl('synthetic_target')} | {r['seconds']:.0f} |")


def markdown(rows: list[dict], summary: list[dict], cost: dict | None, dtype) -> str:
    """The benchmark's table and summary, as results_translate.md holds them."""
    lines = [f"Models {MODELS[0]} and {MODELS[1]} ({str(dtype).removeprefix('torch.')}).", ""]
    if cost:
        line = (f"Cost ({cost['concept']}, {cost['source']} → {cost['target']}, {cost['variant']}, fresh readers): "
                f"one paired forward pass over the shared text {cost['paired_forward_seconds']} s, the whole "
                f"translation {cost['translation_seconds']} s, ratio **{cost['ratio']}**")
        if "concept_texts_forward_seconds" in cost:
            line += (f"; one paired forward pass over the concept's own texts (train, test, OOD) "
                     f"{cost['concept_texts_forward_seconds']} s, so the translation costs "
                     f"**{cost['ratio_to_all_reads']}×** reading every text it needs once")
        lines += [line + f"; per step {cost['per_step']}.", ""]
    lines += ["| variant | translations | median fidelity test | median fidelity OOD | median AUROC test / OOD | "
              "median recovery test | median recovery OOD | must-fail controls passed | translations passing all | "
              "fidelity and recovery test ≥ 0.9, all passed |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['variant']}: {s['subset']} | {s['translations']} | {_f(s['median_fidelity_test'])} | "
                     f"{_f(s['median_fidelity_ood'])} | {_f(s['median_auroc_transfer_test'])} / "
                     f"{_f(s['median_auroc_transfer_ood'])} | {_f(s['median_recovery_test'])} | "
                     f"{_f(s['median_recovery_ood'])} ({s['defined_recovery_ood']} defined) | {s['must_fail_passed']} | "
                     f"{s['all_must_fail_passed']} | {s['meets_goal']} |")
    lines += ["", MD_HEADER, *(md_row(r) for r in rows), ""]
    return "\n".join(lines)


def standalone_cost(a, b, ds, native_a, cfg, generated) -> dict:
    """Seconds of one paired forward pass over the shared text vs the whole translation, fresh readers."""
    shared = build_shared_text(corpus_docs=cfg.corpus_docs, generated=generated, dataset=ds,
                               concept_texts=cfg.concept_texts)
    hooks_a = sorted({f"resid_post.{i}" for i in cfg.layers_a} | {native_a.hook}, key=a.hook)
    hooks_b = [f"resid_post.{i}" for i in cfg.layers_b]
    forward = paired_forward_seconds((a, b), shared.texts, (hooks_a, hooks_b))
    # the concept's own texts (train, test, OOD), which a translation must read too: A at the
    # concept's hook, B at every candidate hook (native B is found there), last token, once each
    texts = [t for split in ds.splits for t in ds.split(split).texts]
    t0 = time.perf_counter()
    Reader(a).read(texts, native_a.hook)
    Reader(b).read(texts, hooks_b)
    forward_concept = time.perf_counter() - t0
    t0 = time.perf_counter()
    tr = translate_concept(native_a, a, b, ds, cfg, generated=generated)
    seconds = time.perf_counter() - t0
    return {"concept": ds.name, "source": a.name, "target": b.name, "variant": "concept_texts" if cfg.concept_texts
            else "label_free", "paired_forward_seconds": round(forward, 1), "translation_seconds": round(seconds, 1),
            "ratio": round(seconds / forward, 2), "concept_texts_forward_seconds": round(forward_concept, 1),
            "ratio_to_all_reads": round(seconds / (forward + forward_concept), 2),
            "per_step": tr.metrics.cost.seconds_per_step,
            "tokens": {"shared_text": tr.metrics.shared_text.to_json(), "read_source": tr.metrics.cost.tokens_read_source,
                       "read_target": tr.metrics.cost.tokens_read_target}}


def curve(args, models, readers, grids, config, name: str) -> None:
    """Fidelity and label AUROC against the number of generated texts, both directions."""
    from interlingua.steer.generative import concept_texts

    ds = load_concept(name)
    native = {m.name: find_concept(m, ds, layers=grids[m.name], n_boot=200, n_null=8, reader=readers[m.name])
              for m in models}
    points = []
    for a, b in ((models[0], models[1]), (models[1], models[0])):
        most = concept_texts(a, native[a.name], max(args.generate_grid), description=ds.description, seed=0)
        for n in args.generate_grid:
            for variant in ("label_free", "concept_texts") if n == 0 else ("label_free",):
                cfg = replace(config, layers_a=grids[a.name], layers_b=grids[b.name],
                              concept_texts=variant == "concept_texts")
                t0 = time.perf_counter()
                tr = translate_concept(native[a.name], a, b, ds, cfg, generated=_first(most, n),
                                       native_b=native[b.name], reader_a=readers[a.name], reader_b=readers[b.name])
                r = row_of(tr, variant, time.perf_counter() - t0, native[a.name], ds.kind)
                r["generated"] = n
                points.append(r)
                print_row(r)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, (a, b) in zip(axes, ((MODELS[0], MODELS[1]), (MODELS[1], MODELS[0]))):
            pts = [p for p in points if p["source"] == a and p["variant"] == "label_free"]
            for key, label in (("fidelity_test", "fidelity test"), ("fidelity_ood", "fidelity OOD"),
                               ("auroc_transfer_test", "label AUROC test"), ("auroc_transfer_ood", "label AUROC OOD")):
                ax.plot([p["generated"] for p in pts], [p[key] for p in pts], marker="o", label=label)
            ref = [p for p in points if p["source"] == a and p["variant"] == "concept_texts"]
            if ref:
                ax.axhline(ref[0]["fidelity_test"], ls="--", c="grey", label="fidelity test, with concept texts")
            ax.set_title(f"{name}: {a} → {b}")
            ax.set_xlabel("generated documents (label-free)")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"curve": points, "settings": vars(args)}, f, indent=1)


def _first(texts, n: int):
    """The first ``n`` generated texts, keeping their sources balanced as the generator ordered them."""
    return texts[:n]


if __name__ == "__main__":
    main()
