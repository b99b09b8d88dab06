"""The causal check of a translation: does steering B along the translated concept do what B's own
concept does?

A translation carries concept ``c`` of model A into a readout of model B at hook ``h``
(:func:`interlingua.translate.translate_concept`). Correlation on text is not causation: the
translated direction might read ``c`` in B without being what B *uses*. So B is steered at ``h``
along three unit directions with the same added norm (``strength × typical norm at h``):

* the translated concept (``translation.target.direction``),
* B's native concept, found in B from the concept's labels at the same hook,
* a random direction (the null: it must do nothing),

plus the unsteered model and a prompt baseline. Each continuation is judged by **A's detector**
(A's concept, run on model A, reading B's text: the model-independent "interlingua" judge) and by
**B's detector** (B's best native readout of the concept, at the layer the translation found best for
native B, which need not be the steered hook). With effects measured from the
unsteered continuations (:mod:`interlingua.steer.evaluate`):

* ``efficacy``         e = effect(translated) / effect(native), at the largest strength;
* ``random_efficacy``  effect(random) / effect(native): must be near 0 (target ≤ 0.1);
* ``prompt_effect``    effect(prompt baseline) / effect(native): above 1, prompting beats steering;
* ``kl_ratio``         KL side effect of the translated direction over the native one *at matched
  effect* (the native KL interpolated, over the strength grid, at the native strength that gives
  the translated direction's effect), or at matched strength where the effects cannot be matched.

:func:`run_causal` is the whole pipeline (find the concept in A, translate it into B, check);
:func:`causal_check` the check of one translation. Both return typed records
(:mod:`interlingua.steer.results`).

Ratios whose denominator is not a real effect (the native direction does not steer: its effect is
below ``min_native_effect`` or within twice the random one) are reported as ``None`` with the
reason, never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from interlingua.errors import InterlinguaError
from interlingua.steer.evaluate import (
    DEFAULT_PROMPTS,
    Evaluator,
    Settings,
    concept_token_sets,
    make_judge,
    prompt_baseline,
    judge_infos,
    random_direction,
)
from interlingua.steer.interventions import add
from interlingua.steer.results import CausalRecord, CausalResult, CausalSummary, Effects, JudgeVerdict

MIN_NATIVE_EFFECT = 0.1  # in units of the detector's test-set gap between classes

TARGETS = {"efficacy": ">= 0.5 for at least half the concepts the native vector can steer",
           "random_efficacy": "<= 0.1", "kl_ratio": "<= 2 at matched effect"}


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return round(num / den, 4)


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Piecewise-linear y(x) through points sorted by x; None outside their range."""
    pts = sorted(zip(xs, ys))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def causal_check(
    translation,
    model_a,
    model_b,
    dataset,
    *,
    prompts: Sequence[str] | None = None,
    strengths: Sequence[float] = (0.5, 1.0),
    native=None,
    native_method: str = "logistic",
    judge_b=None,
    settings: Settings | None = None,
    min_native_effect: float = MIN_NATIVE_EFFECT,
    random_seed: int = 0,
    progress: bool = False,
) -> CausalRecord:
    """Steer ``model_b`` with the translated, native and random directions; return the efficacy record."""
    from interlingua.concepts import find_concept

    strengths = sorted(float(s) for s in strengths)
    if not strengths or strengths[0] <= 0:
        raise InterlinguaError("the causal check needs positive strengths (toward the concept), e.g. 0.5,1.0.")
    target = translation.target
    concept_a = translation.source
    if concept_a.model is None:
        concept_a.bind(model_a)
    if target.model_name != model_b.name and target.weight.shape[0] != model_b.d_model:
        raise InterlinguaError(f"the translation targets {target.model_name}, not {model_b.name}.")
    hook = model_b.hook(target.hook).name
    if native is None:
        native = find_concept(model_b, dataset, hook=hook, method=native_method, n_boot=10, n_null=2)
    if native.hook != hook:
        raise InterlinguaError(f"the native concept is at {native.hook}; the translation is at {hook}.")
    native.bind(model_b)
    norm = native.typical_norm  # one typical norm for all three directions: the added norms match exactly
    if judge_b is None:
        judge_b = _best_detector(model_b, dataset, translation.metrics.native_target_hook, native)
    judges = [make_judge(f"A:{model_a.name}", concept_a, dataset), make_judge(f"B:{model_b.name}", judge_b, dataset)]
    ev = Evaluator(model_b, list(prompts or DEFAULT_PROMPTS), judges, token_sets=concept_token_sets(model_b, dataset),
                   settings=settings or Settings(), progress=progress)
    base_prompts, prefix = prompt_baseline(ev.prompts, dataset)
    directions = {"translated": target.direction, "native": native.direction,
                  "random": random_direction(model_b.d_model, random_seed)}
    rows = [ev.run("unsteered"), ev.run("prompt", prompts=base_prompts, kl=False)]
    for s in strengths:
        for name, d in directions.items():
            if name == "random" and s != strengths[-1]:
                continue  # the null at the largest strength, where it has the most chance to move anything
            rows.append(ev.run(name, [add(d, s, hook=hook, typical_norm=norm)], hook=hook, strength=s,
                               vector_norm=round(s * norm, 4)))

    def eff(cond: str, judge: str, s: float | None = None) -> float | None:
        for r in rows:
            if r.condition == cond and (s is None or r.strength == s):
                return r.effect[judge]
        return None

    def kl(cond: str, s: float) -> float | None:
        return next((r.kl for r in rows if r.condition == cond and r.strength == s), None)

    top = strengths[-1]
    by_judge: dict[str, JudgeVerdict] = {}
    for j in judges:
        n, t, r, p = eff("native", j.name, top), eff("translated", j.name, top), eff("random", j.name, top), \
            eff("prompt", j.name)
        steers = n is not None and n >= min_native_effect and (r is None or n > 2 * abs(r))
        reason = None if steers else (
            f"native effect {n} is below {min_native_effect} or within twice the random effect {r}: B's native "
            "direction does not steer this concept here, so the ratios are undefined")
        by_judge[j.name] = JudgeVerdict(
            native_steers=steers, reason=reason,
            efficacy=_ratio(t, n) if steers else None,
            random_efficacy=_ratio(r, n) if steers else None,
            prompt_effect=_ratio(p, n) if steers else None,
            effects=Effects(native=n, translated=t, random=r, prompt=p),
        )
    judge_a = judges[0].name
    kl_ratio, basis = _kl_at_matched_effect(
        [eff("native", judge_a, s) for s in strengths], [kl("native", s) for s in strengths],
        eff("translated", judge_a, top), kl("translated", top))
    if kl_ratio is None:
        kl_ratio, basis = _ratio(kl("translated", top), kl("native", top)), "matched strength"
    primary = by_judge[judge_a]
    return CausalRecord(
        concept=concept_a.name, source=model_a.name, target=model_b.name, hook=hook,
        strengths=strengths, typical_norm=round(norm, 4), native_method=native.method,
        efficacy=primary.efficacy, random_efficacy=primary.random_efficacy,
        prompt_effect=primary.prompt_effect, kl_ratio=kl_ratio, kl_ratio_basis=basis,
        native_steers=primary.native_steers, by_judge=by_judge, judges=judge_infos(judges, read=False),
        prompt_prefix=prefix, targets=dict(TARGETS), rows=rows,
        translation={k: translation.to_json().get(k) for k in ("auroc_transfer_test", "auroc_native_target",
                                                                "recovery_test", "retrieval")},
    )


def _best_detector(model_b, dataset, hook: str | None, native):
    """B's detector: its best concept readout (the translation's native-target layer when known, else a
    layer sweep), not necessarily the steered hook: a detector at the last layer reads degenerate text badly."""
    from interlingua.concepts import find_concept

    if hook == native.hook:
        return native
    if hook is not None:
        return find_concept(model_b, dataset, hook=hook, n_boot=10, n_null=2)
    n = model_b.n_layers
    return find_concept(model_b, dataset, layers=range(n // 3, n, max(1, n // 6)), n_boot=10, n_null=2)


def _kl_at_matched_effect(native_effects, native_kls, effect_t, kl_t) -> tuple[float | None, str]:
    """KL_translated / KL_native(at the native strength whose effect equals the translated effect)."""
    if effect_t is None or kl_t is None or any(v is None for v in native_effects + native_kls) or effect_t <= 0:
        return None, ""
    xs, ys = [0.0, *native_effects], [0.0, *native_kls]
    if any(b <= a for a, b in zip(xs, xs[1:])):  # the native effect must grow with strength to be inverted
        return None, ""
    kl_n = _interp(effect_t, xs, ys)
    if kl_n is None or kl_n <= 0 or not math.isfinite(kl_n):
        return None, ""
    return round(kl_t / kl_n, 4), "matched effect (native KL interpolated over strength)"


def summarize(records: Sequence[CausalRecord | dict]) -> dict:
    """Across concepts: how many the native vector steers, and how many of those reach e >= 0.5 (JSON keys)."""
    return summary_of(records).to_json()


def summary_of(records: Sequence[CausalRecord | dict]) -> CausalSummary:
    """:func:`summarize` as a record."""
    recs = [CausalRecord.from_json(r) if isinstance(r, dict) else r for r in records]
    steerable = [r for r in recs if r.native_steers]
    good = [r for r in steerable if (r.efficacy or 0) >= 0.5]
    rand_ok = [r for r in steerable if r.random_efficacy is not None and abs(r.random_efficacy) <= 0.1]
    kl_ok = [r for r in steerable if r.kl_ratio is not None and r.kl_ratio <= 2]
    return CausalSummary(concepts=len(recs), native_steers=len(steerable), efficacy_at_least_half=len(good),
                         efficacy_target_met=bool(steerable) and len(good) * 2 >= len(steerable),
                         random_efficacy_within_tenth=len(rand_ok), kl_ratio_within_2=len(kl_ok))


# ---- the whole pipeline ---------------------------------------------------------------------


def run_causal(
    model_a,
    model_b,
    datasets: Sequence,
    *,
    translation=None,
    prompts: Sequence[str] | None = None,
    strengths: Sequence[float] = (0.5, 1.0),
    native_method: str = "logistic",
    settings: Settings | None = None,
    corpus_docs: int = 40,
    steered_docs: int = 0,
    steered_strength: float = 0.25,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
) -> CausalResult:
    """The causal check of translating each concept of ``datasets`` from ``model_a`` into ``model_b``.

    For each concept: find it in A (a layer sweep), optionally sample ``steered_docs`` texts from
    A steered toward (half) and away from (half) it at ``steered_strength`` (its generative mode,
    added to the translation's shared text), translate it into B (``corpus_docs`` corpus documents),
    save the translation as ``out/translation-<concept>`` (reusable as ``translation``, which skips
    all of that), then run :func:`causal_check`. With ``translation`` (a :class:`Translation`,
    or a saved translation's directory) only the check runs, on the one dataset given.
    ``out`` keeps only the translations: save the result with :meth:`CausalResult.save` or
    :func:`interlingua.report.steer.write_causal` (``causal.json`` and ``report.html``).
    """
    from interlingua.concepts import find_concept
    from interlingua.steer.generate import steered_texts
    from interlingua.translate import Translation, translate_concept

    datasets = list(datasets)
    check = dict(prompts=list(prompts) if prompts else None, strengths=strengths, native_method=native_method,
                 settings=settings, progress=progress)
    records = []
    if translation is not None:
        if len(datasets) != 1:
            raise InterlinguaError("checking a saved translation takes the dataset of its one concept.")
        tr = translation if isinstance(translation, Translation) else Translation.load(translation)
        tr.source.bind(model_a)
        tr.target.bind(model_b)
        records.append(causal_check(tr, model_a, model_b, datasets[0], **check))
    else:
        if not datasets:
            raise InterlinguaError("the causal check needs at least one concept.")
        n = model_a.n_layers
        for dataset in datasets:
            concept_a = find_concept(model_a, dataset, layers=range(n // 3, n, max(1, n // 6)), n_boot=20, n_null=2,
                                     progress=progress)
            extra = []
            if steered_docs:  # the concept's generative mode in A: half toward, half away
                half = steered_docs // 2
                extra = steered_texts(model_a, concept_a, steered_docs - half, strength=steered_strength, seed=seed,
                                      progress=progress)
                if half:
                    extra += steered_texts(model_a, concept_a, half, strength=steered_strength, toward=False,
                                           seed=seed + 1, progress=progress)
            tr = translate_concept(concept_a, model_a, model_b, dataset, corpus_docs=corpus_docs, extra_texts=extra,
                                   progress=progress)
            if out is not None:  # reusable as ``translation``, which skips the slow part
                tr.save(Path(out) / f"translation-{dataset.name}")
            records.append(causal_check(tr, model_a, model_b, dataset, **check))
    return CausalResult(concepts=records, summary=summary_of(records))
