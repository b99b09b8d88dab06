"""The main job: translate built-in concepts between the two bundled models, both ways, label-free.

For each concept (one lexical, one contextual, one order-sensitive) the concept is found in
both models; each is then translated into the other model from shared text that carries no
labels (bundled-corpus documents, plus text the source model writes in the concept's
generative mode when ``generate`` > 0), judged on the concept's test and OOD texts by
fidelity to the source model and by the labels, next to B's own probe, the bag-of-words
baseline and the controls, each a test. One activation reader per model serves every step, so
no text is read twice by the same model. The results go to ``results.json`` and ``report.md``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from interlingua import _io
from interlingua.activations import Reader
from interlingua.concepts import find_concept, load_concept
from interlingua.models import load_model
from interlingua.translate import TranslateConfig, translate_concept
from interlingua.translate.translate import default_layers

MODELS = ("smollm2-135m", "gemma3-270m")
CONCEPTS = ("plural_noun", "sentiment", "negation_scope")
CONTROLS = ("shuffled_pairing", "label_shuffle", "synthetic_target")
GOALS = {"fidelity_test": 0.9, "fidelity_ood": 0.8, "recovery_test": 0.9}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _controls(r: dict) -> str:
    parts = []
    for name, c in r["controls"].items():
        mark = "ok" if c["passed"] else "FAIL"
        parts.append(f"{name} {mark}" + (f" p={c['p_value']:.3g}" if c.get("p_value") is not None else ""))
    return "; ".join(parts)


def _row(r: dict) -> str:
    t, o = r["test"], r.get("ood") or {}
    return (f"| {r['concept']} | {r['kind']} | {r['source']} → {r['target']} | {r['target_hook']} | "
            f"{_fmt(t['fidelity'])}{_ci(t['fidelity_ci'])} | {_fmt(o.get('fidelity'))}{_ci(o.get('fidelity_ci'))} | "
            f"{_fmt(t['auroc'])} / {_fmt(t.get('auroc_native_target'))} / {_fmt(t['auroc_bag_of_words'])} | "
            f"{_fmt(t.get('recovery'))}{_ci(t.get('recovery_ci'))} | "
            f"{_fmt(o.get('auroc'))} / {_fmt(o.get('auroc_native_target'))} / {_fmt(o.get('auroc_bag_of_words'))} | "
            f"{_fmt(o.get('recovery'))}{_ci(o.get('recovery_ci'))} | {_controls(r)} | {r['seconds']:.0f} |")


HEADER = ("| concept | kind | direction | B hook | fidelity test | fidelity OOD | AUROC test: transfer / native B / "
          "bag of words | recovery test | AUROC OOD: transfer / native B / bag of words | recovery OOD | controls | s |\n|"
          + "---|" * 12)


def _median(xs: list) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return None if not xs else xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def targets(rows: list[dict]) -> list[dict]:
    """The issue's goals, each with what was measured over how many rows, and whether it is met."""
    out = []
    for key, goal in GOALS.items():
        values = [r.get(key) for r in rows]
        defined = [v for v in values if v is not None]
        med = _median(defined)
        out.append({"target": f"median {key.replace('_', ' ')}", "goal": f">= {goal}", "measured": med,
                    "rows": f"{len(defined)} of {len(values)}", "met": med is not None and med >= goal})
    must = [c for r in rows for c in r["controls"].values() if c.get("kind") == "must_fail"]
    out.append({"target": "must-fail controls with p <= 0.01", "goal": "all", "rows": f"{len(must)} controls",
                "measured": f"{sum(c['passed'] for c in must)}/{len(must)}",
                "met": bool(must) and all(c["passed"] for c in must)})
    return out


def run_demo(out: Path, concepts: tuple[str, ...] = CONCEPTS, dtype: str = "auto", corpus_docs: int = 60,
             generate: int = 0, max_pairs: int = 100, controls: tuple[str, ...] = CONTROLS,
             progress: bool = True) -> dict:
    """Find, translate both ways and report each of ``concepts``; returns what ``results.json`` holds.

    ``max_pairs`` keeps the first pairs of every split of each concept (0: all): the demo's budget
    is 10 minutes on 2 cores, and the concept texts are most of what the models read;
    ``benchmarks/translate.py`` runs every concept on its full splits.
    """
    say = print if progress else (lambda *a, **k: None)
    config = TranslateConfig(corpus_docs=corpus_docs, controls=controls)  # checked before any model loads
    t_start = time.perf_counter()
    models = {n: load_model(n, dtype=dtype) for n in MODELS}
    say(f"interlingua demo: translating {', '.join(concepts)} between {MODELS[0]} and {MODELS[1]} "
        f"({models[MODELS[0]].dtype}), label-free shared text: {corpus_docs} corpus documents"
        + (f" + {generate} texts each model writes per concept" if generate else ""))
    limit = min(m.context_length for m in models.values())
    readers = {n: Reader(m, max_tokens=limit) for n, m in models.items()}
    grids = {n: default_layers(m) for n, m in models.items()}
    rows = []
    for name in concepts:
        ds = load_concept(name).head(max_pairs)
        native, generated = {}, {}
        for n, m in models.items():
            t0 = time.perf_counter()
            native[n] = find_concept(m, ds, layers=grids[n], n_boot=200, n_null=8, reader=readers[n])
            say(f"  {name}: found in {n} at {native[n].hook}: AUROC test {native[n].metrics['auroc_test']}, "
                f"OOD {native[n].metrics['auroc_ood']} ({time.perf_counter() - t0:.0f} s)")
            generated[n] = []
            if generate:
                from interlingua.steer.generative import concept_texts

                t0 = time.perf_counter()
                generated[n] = concept_texts(m, native[n], generate, description=ds.description, seed=0)
                say(f"  {name}: {n} wrote {len(generated[n])} texts ({time.perf_counter() - t0:.0f} s)")
        for a, b in (MODELS, MODELS[::-1]):
            t0 = time.perf_counter()
            cfg = replace(config, layers_a=grids[a], layers_b=grids[b])
            tr = translate_concept(native[a], models[a], models[b], ds, cfg, generated=generated[a], native_b=native[b],
                                   reader_a=readers[a], reader_b=readers[b])
            tr.save(out / f"{name}-{a}-to-{b}")
            rec = {**tr.to_json(), "kind": ds.kind, "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(rec)
            t = rec["test"]
            say(f"  {name}: {a} → {b}: fidelity test {_fmt(t['fidelity'])}, OOD {_fmt((rec['ood'] or {}).get('fidelity'))}; "
                f"AUROC {_fmt(t['auroc'])} vs B's own {_fmt(t.get('auroc_native_target'))} → recovery "
                f"{_fmt(t.get('recovery'))}; {_controls(rec)} ({rec['seconds']:.0f} s)")
    table = "\n".join([HEADER, *(_row(r) for r in rows)])
    summary = {"targets": targets(rows), "seconds": round(time.perf_counter() - t_start, 1),
               "tokens_read": {n: r.tokens_read for n, r in readers.items()}}
    result = {"models": MODELS, "dtype": str(models[MODELS[0]].dtype).removeprefix("torch."), "concepts": list(concepts),
              "shared_text": {"corpus_docs": corpus_docs, "generated_per_concept_and_model": generate,
                              "label_free": True},
              "max_pairs_per_split": max_pairs,
              "summary": summary, "translations": rows}
    _io.write_json(out / "results.json", result)
    _write_report(out / "report.md", result, table)
    say("\n" + table)
    for t in summary["targets"]:
        say(f"target {t['target']}: {_fmt(t['measured'])} over {t['rows']} (goal {t['goal']}) "
            f"{'met' if t['met'] else 'NOT met'}")
    say(f"\n{summary['seconds']:.0f} s. Wrote {out / 'results.json'} and {out / 'report.md'}")
    return result


def _write_report(path: Path, result: dict, table: str) -> None:
    s = result["summary"]
    lines = [
        "# interlingua demo", "",
        f"Models: {result['models'][0]} and {result['models'][1]} ({result['dtype']}); {s['seconds']:.0f} s. "
        f"Shared text: {result['shared_text']['corpus_docs']} bundled-corpus documents"
        + (f" and {result['shared_text']['generated_per_concept_and_model']} texts the source model wrote"
           if result["shared_text"]["generated_per_concept_and_model"] else "")
        + "; no labelled text (label-free). "
        + (f"Each concept's splits are cut to their first {result['max_pairs_per_split']} pairs (the full splits: "
           "benchmarks/translate.py)." if result["max_pairs_per_split"] else ""), "",
        "**Fidelity** = AUROC of B's translated score against the source model's own decisions on texts no step "
        "was fitted on; **recovery** = (AUROC_transfer − 0.5) / (AUROC_native_B − 0.5) against B's own probe "
        "(found from the labels on the same layers). Intervals are paired bootstrap 95% intervals over test pairs; "
        "the bag-of-words column is a Naive Bayes classifier trained on the concept's train texts. Must-fail "
        "controls are permutation tests (p over 200 null draws, whole documents reassigned or labels permuted); "
        "they pass at p ≤ 0.01.", "", table, "", "## Targets", "",
        "| target | goal | measured | over | met |", "|---|---|---|---|---|",
        *(f"| {t['target']} | {t['goal']} | {_fmt(t['measured'])} | {t['rows']} | {'yes' if t['met'] else 'no'} |"
          for t in s["targets"]),
        "", "## Controls", ""]
    for r in result["translations"]:
        for name, c in r["controls"].items():
            lines.append(f"- {r['concept']} {r['source']} → {r['target']}: **{name}** ({c['kind']}) "
                         f"{'passed' if c['passed'] else 'FAILED'}: {c['statistic']} {c['value']}"
                         + (f", p {c['p_value']}" if c.get("p_value") is not None else "")
                         + (f", difference CI {c['difference_ci']}" if c.get("difference_ci") else "")
                         + f" — must: {c['must']}")
    notes = [f"- {r['concept']} {r['source']} → {r['target']}: {r['test']['recovery_note']}"
             for r in result["translations"] if r["test"].get("recovery_note")]
    if notes:
        lines += ["", "## Notes", "", *notes]
    with _io.atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
