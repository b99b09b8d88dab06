"""The concept's generative mode on the bundled models: does the text carry the concept, as A's detector reads it?

For each model (A) and concept: find the concept in A (or load it from --concept-dir), calibrate
the steering strengths with A's own detector (:func:`interlingua.steer.generative.calibrate_strengths`),
then make texts of every source (:func:`interlingua.steer.generative.concept_texts`) and, beside them,
the issue's first try (A steered ±0.5 × typical norm, 30 new tokens from corpus-document openings,
:func:`interlingua.steer.steered_texts`), bundled-corpus documents (what the translation's shared
text is today) and, for reference only, the concept's labelled test texts. Every row is read the
same way: A's per-word scores (every word that ends on a token boundary, as the translation reads
them) and last-token scores (as the concept was fitted): mean, std, fraction above A's threshold
0; perplexity under the unsteered A; distinct-bigram ratio; seconds per text (generation only).

    python benchmarks/generative.py                                  # both models, three concepts
    python benchmarks/generative.py --models smollm2-135m --concepts sentiment --per-source 8
    python benchmarks/generative.py --concept-dir /tmp/concepts --json runs/generative.json --md out.md

Numbers in benchmarks/results_generative.md came from this script (see its header for the command).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from interlingua import load_model
from interlingua.concepts import Concept, find_concept, load_concept
from interlingua.data.corpus import load_corpus
from interlingua.steer import steered_texts
from interlingua.steer.generative import (
    calibrate_strengths,
    chat_unavailable,
    concept_texts,
    rewrite_goals,
    rewrite_sentences,
    rewrites,
    summarize_texts,
    trim_to_sentences,
)

COLUMNS = ("n_texts", "word_mean", "word_std", "word_frac_pos", "last_mean", "last_std", "last_frac_pos", "ppl",
           "distinct2", "mean_chars", "seconds_per_text")


def get_concept(model, name: str, concept_dir: Path | None) -> Concept:
    """The concept found in ``model`` as the brief asks (every third layer), cached under ``concept_dir``."""
    path = concept_dir / model.name / name if concept_dir else None
    if path is not None and (path / "concept.json").is_file():
        return Concept.load(path, model=model)
    c = find_concept(model, load_concept(name), layers=range(1, model.n_layers, 3), n_boot=50, n_null=2)
    if path is not None:
        c.save(path)
    return c


def corpus_documents(n: int, max_chars: int = 400) -> list[str]:
    """Test-split corpus documents, cut at the last sentence end before ``max_chars``."""
    out = []
    for d in load_corpus("test")[: 4 * n]:
        text, cut = trim_to_sentences(d[:max_chars], 0, 99)
        if cut and len(text.split()) >= 8:
            out.append(text)
        if len(out) == n:
            break
    return out


def row(label: str, concept, texts: list[str], seconds: float | None) -> dict:
    r = {"source": label, **summarize_texts(concept, texts)}
    r["seconds_per_text"] = round(seconds / len(texts), 3) if seconds is not None and texts else None
    r["examples"] = texts[:3]
    return r


def run_one(model, name: str, args) -> dict:
    ds = load_concept(name)
    t0 = time.perf_counter()
    concept = get_concept(model, name, args.concept_dir)
    find_s = time.perf_counter() - t0
    print(f"[{model.name} / {name}] {concept.hook} ({concept.method}), test AUROC {concept.metrics.auroc_test}",
          flush=True)
    t0 = time.perf_counter()
    cal = calibrate_strengths(model, concept, n_prompts=args.cal_prompts, direction=args.direction, seed=args.seed,
                              read=args.read, full_curve=args.full_curve,
                              max_new_tokens=args.max_new_tokens, max_sentences=args.max_sentences,
                              progress=True)
    cal_s = time.perf_counter() - t0
    print(f"  calibrated in {cal_s:.0f} s: toward {cal['toward']}, away {cal['away']}", flush=True)
    rows, k = [], args.per_source
    common = dict(strengths=cal, description=ds.description, seed=args.seed, max_new_tokens=args.max_new_tokens,
                  max_sentences=args.max_sentences, calibration={"direction": args.direction})
    skipped = {}
    for kind, n in (("sampled", k), ("steered", 2 * k)):
        t0 = time.perf_counter()
        try:
            got = concept_texts(model, concept, n, sources=(kind,), **common)
        except Exception as e:  # noqa: BLE001 -- a source that cannot run is reported, not fatal
            skipped[kind] = str(e)
            print(f"  {kind}: skipped ({e})", flush=True)
            continue
        secs = time.perf_counter() - t0
        skipped.update(got.skipped)
        for source in dict.fromkeys(g.source for g in got):
            texts = [g.text for g in got.by_source(source)]
            strength = got.by_source(source)[0].strength
            label = source + (f" ({strength:+g})" if strength is not None else "")
            rows.append(row(label, concept, texts, secs * len(texts) / len(got)))
            print(f"  {label}: {len(texts)} texts", flush=True)
    why = chat_unavailable(model)
    if why:
        skipped["rewrite"] = why
    else:  # rewrites made directly, to show how many replies are usable (concept_texts fills the rest)
        pool = rewrite_sentences(2 * k, args.seed)
        for source, goal in zip(("rewrite_toward", "rewrite_away"), rewrite_goals(name, ds.description)):
            t0 = time.perf_counter()
            made = [t for t in rewrites(model, pool, goal, max_new_tokens=args.max_new_tokens,
                                        max_sentences=args.max_sentences) if t]
            secs = time.perf_counter() - t0
            print(f"  {source}: {len(made)} of {len(pool)} replies usable", flush=True)
            if made:
                rows.append(row(f"{source} ({len(made)}/{len(pool)} usable)", concept, made[:k],
                                secs * min(k, len(made)) / len(made)))
                rows[-1]["goal"] = goal
    for toward in (True, False):  # the first try: fixed ±0.5, 30 tokens, corpus-document openings
        t0 = time.perf_counter()
        texts = steered_texts(model, concept, k, strength=0.5, toward=toward, max_new_tokens=30, seed=args.seed)
        rows.append(row(f"fixed {'+' if toward else '-'}0.5, 30 tok (issue's try)", concept, texts,
                        time.perf_counter() - t0))
    rows.append(row("corpus documents (≤400 chars)", concept, corpus_documents(k), None))
    test = ds.split("test")
    pos = [t for t, y in zip(test.texts, test.binary.tolist()) if y][:k]
    neg = [t for t, y in zip(test.texts, test.binary.tolist()) if not y][:k]
    rows.append(row("labelled test positives (reference)", concept, pos, None))
    rows.append(row("labelled test negatives (reference)", concept, neg, None))
    return {"model": model.name, "concept": name, "hook": concept.hook, "method": concept.method,
            "auroc_test": concept.metrics.auroc_test, "typical_norm": round(concept.typical_norm, 3),
            "find_seconds": round(find_s, 1), "calibration_seconds": round(cal_s, 1), "calibration": cal,
            "skipped": skipped, "rows": rows}


def _f(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def markdown(results: list[dict], command: str) -> str:
    lines = ["# The concept's generative mode: results", "", f"`{command}`", ""]
    for r in results:
        cal = r["calibration"]
        lines += [f"## {r['model']} / {r['concept']}", "",
                  f"Concept at `{r['hook']}` ({r['method']}, test AUROC {r['auroc_test']}, typical norm "
                  f"{r['typical_norm']}). Calibrated (direction `{cal['settings']['direction']}`, "
                  f"{len(cal['settings']['prompts'])} prompts, {r['calibration_seconds']:.0f} s): "
                  f"toward **{cal['toward']}** ({cal['reasons']['toward']}), away **{cal['away']}** "
                  f"({cal['reasons']['away']}).", ""]
        lines += ["| strength (× spread) | direction | shift last | shift text | shift word | last >0 | word >0 | "
                  "ppl ×unsteered | distinct2 | coherent |", "|---|" + "---|" * 9]
        b = cal["baseline"]
        lines.append(f"| 0 | unsteered | – | – | – | {b['last_frac_pos']:.2f} | {b['word_frac_pos']:.2f} | "
                     f"1 (ppl {b['ppl']:.1f}) | {b['distinct2']:.2f} | |")
        for c in cal["candidates"]:
            lines.append(f"| {c['strength']:.3g} ({c['strength_in_spread']:g}) | {c['direction']} | "
                         f"{c['shift_last']:+.2f} | {c['shift_text']:+.2f} | {c['shift_word']:+.2f} | "
                         f"{c['last_frac_pos']:.2f} | {c['word_frac_pos']:.2f} | {c['ppl_ratio']:.2f} | "
                         f"{c['distinct2']:.2f} | {'yes' if c['coherent'] else 'no'} |")
        lines += ["", "| source | n | word mean | word std | word >0 | last mean | last std | last >0 | ppl | "
                      "distinct2 | chars | s/text |", "|---|" + "---|" * 11]
        for x in r["rows"]:
            lines.append("| " + " | ".join([x["source"]] + [_f(x.get(k)) for k in COLUMNS]) + " |")
        if r["skipped"]:
            lines += [""] + [f"* skipped `{k}`: {v}" for k, v in r["skipped"].items()]
        lines += ["", "Examples:", ""]
        for x in r["rows"]:
            if "reference" in x["source"] or not x["examples"]:
                continue
            shown = [e.replace("\n", " ⏎ ") for e in x["examples"][:2]]
            lines.append(f"* *{x['source']}*: " + " / ".join(f"“{e}”" for e in shown))
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="smollm2-135m,gemma3-270m")
    p.add_argument("--concepts", default="plural_noun,sentiment,negation_scope")
    p.add_argument("--per-source", type=int, default=12, help="texts per source (per direction)")
    p.add_argument("--cal-prompts", type=int, default=8)
    p.add_argument("--direction", default="readout", choices=("readout", "pattern"))
    p.add_argument("--read", default="last", choices=("last", "text", "word"), help="calibration criterion")
    p.add_argument("--full-curve", action="store_true", help="measure every rung of the ladder")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--max-sentences", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--concept-dir", type=Path, default=None, help="cache of found concepts (found once, reused)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/generative.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    for mname in args.models.split(","):
        model = load_model(mname, dtype="float32")
        for name in args.concepts.split(","):
            results.append(run_one(model, name, args))
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
            if args.md:
                args.md.write_text(markdown(results, command), encoding="utf-8")
    print(markdown(results, command))


if __name__ == "__main__":
    main()
