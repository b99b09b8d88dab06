"""The main job on the bundled real models.

Until concept translation lands, the demo runs the foundation end to end: load both bundled
models, extract residual-stream activations at a middle layer of each on the bundled
corpus, align the words of the two tokenizations, and report what was done (sizes, speed,
outlier positions, word-alignment coverage) as text and as ``results.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from interlingua import _io
from interlingua.activations import extract_to_disk, outlier_report
from interlingua.align import align_words
from interlingua.data.corpus import load_corpus
from interlingua.models import load_model

MODELS = ("smollm2-135m", "gemma3-270m")


def run_demo(out: Path, max_docs: int = 120, dtype: str = "float32", progress: bool = True) -> dict:
    texts = load_corpus("test", max_docs=max_docs)
    say = print if progress else (lambda *a, **k: None)
    say(f"interlingua demo: {len(texts)} documents of the bundled corpus (test split) → {out}")
    result: dict = {"documents": len(texts), "dtype": dtype, "models": {}}
    loaded = {}
    for name in MODELS:
        t0 = time.perf_counter()
        model = load_model(name, dtype=dtype)
        load_s = time.perf_counter() - t0
        hook = f"resid_post.{model.n_layers // 2}"
        t0 = time.perf_counter()
        cache = extract_to_disk(model, texts, hook, out / name, progress=progress)
        extract_s = time.perf_counter() - t0
        acts = cache.load()
        outliers = outlier_report(acts, hook)
        result["models"][name] = {
            **model.describe(), "hook": hook, "load_seconds": round(load_s, 2),
            "extract_seconds": round(extract_s, 2), "vectors": len(acts),
            "tokens_per_second": round(len(acts) / extract_s, 1) if extract_s > 0 else None,
            "outliers": outliers,
        }
        loaded[name] = (model, acts, hook)
        say(f"  {name}: loaded in {load_s:.1f} s; {len(acts):,} vectors × {model.d_model} at {hook} "
            f"in {extract_s:.1f} s; median norm {outliers['median_norm']}, {outliers['n_outliers']} "
            f"high-norm outliers (top position {outliers['top_positions'][:1]})")
    alignment = align_words(texts, {n: loaded[n][0].tokenizer for n in MODELS})
    shapes = {n: list(alignment.gather(loaded[n][1], n, loaded[n][2]).shape) for n in MODELS}
    result["alignment"] = {"words": alignment.n_words, "aligned": len(alignment),
                           "coverage": round(alignment.coverage, 4), "paired_matrices": shapes}
    say(f"  word alignment: {len(alignment):,} of {alignment.n_words:,} words end on a token boundary in "
        f"both tokenizers (coverage {alignment.coverage:.1%}); paired matrices "
        + " and ".join(f"{n} {tuple(s)}" for n, s in shapes.items()))
    _io.write_json(out / "results.json", result)
    say(f"  wrote {out / 'results.json'}")
    return result
