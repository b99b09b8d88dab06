"""The main job: translate built-in concepts between the two bundled models, both ways, label-free.

For each concept (one lexical, one contextual, one order-sensitive) the concept is found in
both models; each is then translated into the other model from shared text that carries no
labels (bundled-corpus documents, plus text the source model writes in the concept's
generative mode when ``generate`` > 0), judged on the concept's test and OOD texts by
fidelity to the source model and by the labels, next to B's own probe, the bag-of-words
baseline and the controls, each a test. One activation reader per model serves every step, so
no text is read twice by the same model. The results go to ``results.json``; every translation is
saved in its own directory (the CLI adds the reports: :mod:`interlingua.report.demo`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dataclasses import field as dc_field

from interlingua import _io
from interlingua.activations import Reader
from interlingua.concepts import find_concept, load_concept
from interlingua.models import load_model
from interlingua.results import Record, record
from interlingua.translate import TranslateConfig, translate_concept
from interlingua.translate.results import TranslationResult
from interlingua.translate.translate import default_layers

MODELS = ("smollm2-135m", "gemma3-270m")
CONCEPTS = ("plural_noun", "sentiment", "negation_scope")
CONTROLS = ("shuffled_pairing", "label_shuffle", "synthetic_target")
GOALS = {"fidelity_test": 0.9, "fidelity_ood": 0.8, "recovery_test": 0.9}


@record
class Target(Record):
    """One of the demo's goals: what was measured over how many rows, and whether it is met."""

    target: str = ""
    goal: str = ""
    measured: float | str | None = None
    rows: str = ""
    met: bool = False


@record
class DemoSummary(Record):
    targets: list[Target] = dc_field(default_factory=list)
    seconds: float = 0.0
    tokens_read: dict[str, int] | None = None


@record
class DemoRow(Record):
    """One direction of one concept: the translation's findings (flat in JSON), its kind and time."""

    result: TranslationResult | None = None
    kind: str | None = None
    seconds: float = 0.0

    @property
    def directory(self) -> str:
        m = self.result.metrics
        return f"{m.concept}-{m.source}-to-{m.target}"

    def to_json(self) -> dict:
        return {**self.result.to_json(), "kind": self.kind, "seconds": self.seconds, **self.extra}

    @classmethod
    def from_json(cls, data: dict) -> DemoRow:
        rest = {k: v for k, v in data.items() if k not in ("kind", "seconds")}
        return cls(result=TranslationResult.from_json(rest), kind=data.get("kind"), seconds=data.get("seconds", 0.0))


@record
class DemoResult(Record):
    """What ``results.json`` holds: the settings, the targets and every translation."""

    models: list[str] = dc_field(default_factory=list)
    dtype: str = ""
    concepts: list[str] = dc_field(default_factory=list)
    shared_text: dict | None = None
    max_pairs_per_split: int = 0
    summary: DemoSummary | None = None
    translations: list[DemoRow] = dc_field(default_factory=list)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _median(xs: list) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return None if not xs else xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def targets(rows: list[TranslationResult]) -> list[Target]:
    """The issue's goals, each with what was measured over how many rows, and whether it is met."""
    out = []
    for key, goal in GOALS.items():
        split, attr = key.split("_")[1], key.split("_")[0]
        values = [getattr(r.metrics.split(split), attr) if r.metrics.split(split) else None for r in rows]
        defined = [v for v in values if v is not None]
        med = _median(defined)
        out.append(Target(target=f"median {key.replace('_', ' ')}", goal=f">= {goal}", measured=med,
                          rows=f"{len(defined)} of {len(values)}", met=med is not None and med >= goal))
    must = [c for r in rows for c in r.controls.values() if c.kind == "must_fail"]
    out.append(Target(target="must-fail controls with p <= 0.01", goal="all", rows=f"{len(must)} controls",
                      measured=f"{sum(c.passed for c in must)}/{len(must)}", met=bool(must) and all(c.passed for c in must)))
    return out


def run_demo(out: Path, concepts: tuple[str, ...] = CONCEPTS, dtype: str = "auto", corpus_docs: int = 60,
             generate: int = 0, max_pairs: int = 100, controls: tuple[str, ...] = CONTROLS,
             progress: bool = True) -> DemoResult:
    """Find and translate each of ``concepts`` both ways; saves every translation (with its report)
    and ``results.json`` under ``out`` and returns what ``results.json`` holds.

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
            say(f"  {name}: found in {n} at {native[n].hook}: AUROC test {native[n].metrics.auroc_test}, "
                f"OOD {native[n].metrics.auroc_ood} ({time.perf_counter() - t0:.0f} s)")
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
            row = DemoRow(result=tr.result, kind=ds.kind, seconds=round(time.perf_counter() - t0, 1))
            tr.save(out / row.directory)
            rows.append(row)
            t, o = tr.metrics.test, tr.metrics.ood
            say(f"  {name}: {a} → {b}: fidelity test {_fmt(t.fidelity)}, OOD {_fmt(o and o.fidelity)}; AUROC "
                f"{_fmt(t.auroc)} vs B's own {_fmt(t.auroc_native_target)} → recovery {_fmt(t.recovery)}; "
                + ", ".join(f"{n} {'ok' if c.passed else 'FAIL'}" for n, c in tr.controls.items())
                + f" ({row.seconds:.0f} s)")
    result = DemoResult(
        models=list(MODELS), dtype=str(models[MODELS[0]].dtype).removeprefix("torch."), concepts=list(concepts),
        shared_text={"corpus_docs": corpus_docs, "generated_per_concept_and_model": generate, "label_free": True},
        max_pairs_per_split=max_pairs,
        summary=DemoSummary(targets=targets([r.result for r in rows]), seconds=round(time.perf_counter() - t_start, 1),
                            tokens_read={n: r.tokens_read for n, r in readers.items()}),
        translations=rows)
    _io.write_json(out / "results.json", result.to_json())
    return result
