"""Steering rendered for people: a sweep (``steer.json``) and a causal check (``causal.json``).

Text (what ``interlingua steer`` prints and ``steer.txt`` holds), the sweep's PNG figure and one
HTML page each, all read from the typed results of :mod:`interlingua.steer.results`.
"""

from __future__ import annotations

import math
from pathlib import Path

from interlingua.report import REPORT, saved_as, write_report
from interlingua.report import plots
from interlingua.report.html import Page, fmt
from interlingua.steer.results import CAUSAL_FILE, SWEEP_FILE, CausalRecord, CausalResult, SteerRow, SweepResult

EFFECT_UNIT = ("effect = change in the detector's score from the unsteered text, in units of its gap between the "
               "concept's positive and negative test texts (1.0: as far as from a negative to a positive example)")


def _fmt(x, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def _short(name: str | None) -> str:
    """A judge's name short enough for an axis label (a model path keeps its last part)."""
    name = name or ""
    head, sep, tail = name.rpartition("/")
    return (tail or name)[:28]


# ---- the sweep: text ------------------------------------------------------------------------


def sweep_table(result: SweepResult) -> str:
    """A fixed-width text table of every row (``steer.txt``)."""
    names = [j.name for j in result.judges]
    head = f"{'condition':<10}{'hook':<15}{'strength':>9}" + "".join(f"{'effect:' + n[:12]:>20}" for n in names) \
        + f"{'Δlogodds':>10}{'ppl':>9}{'KL':>9}"
    lines = [head, "-" * len(head)]
    for r in result.rows:
        eff = "".join(f"{_fmt(r.effect.get(n)):>20}" for n in names)
        lines.append(f"{r.condition:<10}{r.hook or '-':<15}{_fmt(r.strength):>9}{eff}"
                     f"{_fmt(r.token_logodds_effect):>10}{_fmt(r.perplexity, 1):>9}{_fmt(r.kl, 3):>9}")
    return "\n".join(lines)


def sweep_text(result: SweepResult) -> str:
    """The terminal summary of a sweep: the table, the best cell against both baselines, a few continuations."""
    lines = [f"{result.model} steered toward '{result.concept}' (effect = change in the detector's score / its "
             "positive-vs-negative gap on test texts; Δlogodds: concept vs opposite words as next token)",
             sweep_table(result)]
    s = result.summary()
    if s is not None and s.best_steer is not None:
        b = s.best_steer
        lines.append(f"best steering: {b.hook} × {b.strength}: effect {b.effect.get(s.judge)}; prompt baseline: "
                     f"{s.prompt_effect}; largest random effect: {s.max_abs_random_effect}")
    best = result.best_row()
    for r in result.rows:
        if r.condition in ("unsteered", "prompt") or r is best:
            lines.append(f"  {r.condition:<9} {r.hook or ''} {r.strength or ''}: "
                         + " | ".join(repr(e[:80]) for e in r.examples[:2]))
    return "\n".join(lines)


def sweep_png(result: SweepResult, path: str | Path) -> bool:
    """Effect vs strength per layer (steer solid, random dashed, prompt as a line) as a PNG; False without judges."""
    from matplotlib.figure import Figure

    from interlingua import _io

    j = result.judge
    if j is None:
        return False
    fig = Figure(figsize=(6, 4), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    for h in _hooks(result):
        for cond, style in (("steer", "-o"), ("random", "--x")):
            pts = _points(result.rows, cond, h, lambda r: r.strength, j)
            if pts:
                ax.plot(*zip(*pts), style, label=f"{h} ({cond})")
    prompt = result.row("prompt")
    if prompt is not None and _finite(prompt.effect.get(j)):
        ax.axhline(prompt.effect[j], color="k", lw=1, label="prompt baseline")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("strength (× typical norm)")
    ax.set_ylabel(f"effect ({j} detector)")
    ax.legend(fontsize=7)
    _io.save_figure(fig, path, dpi=120)
    return True


def write_sweep(result: SweepResult, directory: str | Path) -> dict[str, Path | None]:
    """Save ``steer.json`` and render ``steer.txt``, ``steer.png`` and ``report.html`` beside it."""
    from interlingua import _io

    d = Path(directory)
    paths: dict[str, Path | None] = {"json": result.save(d)}
    _io.write_text(d / "steer.txt", sweep_table(result) + "\n")
    paths["text"] = d / "steer.txt"
    paths["plot"] = d / "steer.png" if sweep_png(result, d / "steer.png") else None
    paths["report"] = write_report(sweep_html(result), d)
    return paths


# ---- the sweep: HTML ------------------------------------------------------------------------


def _hooks(result: SweepResult) -> list[str]:
    return list(dict.fromkeys(r.hook for r in result.rows if r.condition == "steer" and r.hook))


def _points(rows, condition: str, hook: str | None, x, judge: str) -> list[tuple[float, float]]:
    """(x(row), effect) of the rows of ``condition`` at ``hook``, by strength, where both are numbers."""
    pts = []
    for r in sorted((r for r in rows if r.condition == condition and (hook is None or r.hook == hook)),
                    key=lambda r: (r.strength is None, r.strength or 0.0)):
        xv, yv = x(r), r.effect.get(judge)
        if _finite(xv) and _finite(yv):
            pts.append((float(xv), float(yv)))
    return pts


def _series(pts: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in pts], [p[1] for p in pts]


def sweep_html(result: SweepResult) -> Page:
    """The report page of a sweep: effect against coherence with both baselines, every row, sample text."""
    what = (f"control vector {result.control_vector} (layers {', '.join(map(str, result.layers or []))})"
            if result.control_vector else f"{result.method or 'steering'} direction per layer")
    page = Page(f"Steering {result.model or 'a model'} toward '{result.concept or '?'}'",
                f"{what}; strengths {result.settings.strength_scale}; {len(result.settings.prompts)} prompts, "
                f"{result.settings.max_new_tokens} new tokens, temperature {result.settings.temperature:g}, "
                f"steered positions: {result.settings.positions}.")
    s = result.summary()
    j = result.judge
    page.heading("Does it steer, and at what cost?")
    page.paragraph(EFFECT_UNIT + ". Coherence: perplexity of the continuation under the unsteered model, and KL "
                   "(unsteered ‖ steered) of the next-token distribution on neutral text. Baselines: a prompt that "
                   "asks for the concept, and a norm-matched random vector at every layer and strength, which must "
                   "do nothing.", muted=True)
    if s is not None:
        b = s.best_steer
        page.table(["by judge", "best steering", "its effect", "perplexity", "KL", "prompt baseline effect",
                    "largest |random effect|"],
                   [[s.judge, f"{b.hook} × {b.strength:g}" if b and b.strength is not None else "–",
                     b and b.effect.get(s.judge), b and b.perplexity, b and b.kl, s.prompt_effect,
                     s.max_abs_random_effect]], left=2)
    if j is not None:
        refs = {"prompt baseline": s.prompt_effect if s else None,
                "random vector, largest |effect|": s.max_abs_random_effect if s else None}
        for xname, x, label in (("KL", lambda r: r.kl, "KL(unsteered ‖ steered) on neutral text"),
                                ("perplexity", lambda r: r.perplexity, "perplexity under the unsteered model")):
            series = {f"{h}": _series(_points(result.rows, "steer", h, x, j)) for h in _hooks(result)}
            page.figure("lines", plots.lines(series, xlabel=label, ylabel=f"effect ({_short(j)})", hlines=refs),
                        f"Effect ({j}) against {xname}, one line per layer over the strengths; dashed: the prompt "
                        "baseline's effect and the largest random-vector effect.")
        series = {}
        for h in _hooks(result):
            series[f"{h} steer"] = _series(_points(result.rows, "steer", h, lambda r: r.strength, j))
            series[f"{h} random"] = _series(_points(result.rows, "random", h, lambda r: r.strength, j))
        page.figure("lines", plots.lines(series, xlabel="strength", ylabel=f"effect ({_short(j)})",
                                         hlines={"prompt baseline": s.prompt_effect if s else None}),
                    f"Effect ({j}) against strength: the steering vector and the norm-matched random vector per "
                    "layer.")
    _rows_table(page, result.rows, [x.name for x in result.judges], "Every condition")
    _judges_table(page, result.judges)
    _generations(page, result.rows, result.settings.prompts, result.prompt_prefix)
    return page


def _rows_table(page: Page, rows: list[SteerRow], judges: list[str], title: str) -> None:
    page.heading(title)
    page.table(["condition", "hook", "strength", "vector norm", *[f"effect: {n}" for n in judges], "Δlogodds",
                "perplexity", "KL", "empty"],
               [[r.condition, r.hook or "–", r.strength, r.vector_norm, *[r.effect.get(n) for n in judges],
                 r.token_logodds_effect, r.perplexity, r.kl, r.n_empty] for r in rows], left=2)


def _judges_table(page: Page, judges) -> None:
    page.heading("Judges", level=3)
    page.table(["judge", "model", "hook", "gap (the effect's unit)", "read"],
               [[j.name, j.model, j.hook, j.gap, j.read or "mean"] for j in judges], left=3)


def _generations(page: Page, rows: list[SteerRow], prompts: list[str], prefix: str | None) -> None:
    page.heading("Sample generations")
    if prefix:
        page.paragraph(f"The prompt baseline puts this before every prompt: {prefix!r}", muted=True)
    table = []
    for r in rows:
        for i, text in enumerate(r.examples):
            where = f"{r.hook or ''} × {r.strength:g}" if r.strength is not None else ""
            table.append([r.condition, where, *([prompts[i] if i < len(prompts) else ""] if prompts else []), text])
    page.table(["condition", "where", *(["prompt"] if prompts else []), "continuation"], table, left=4)


# ---- the causal check -----------------------------------------------------------------------


def causal_text(result: CausalResult) -> str:
    """The terminal summary of a causal check (what ``interlingua steer --source`` prints)."""
    lines = []
    for r in result.concepts:
        lines.append(f"{r.concept}: {r.source} → {r.target} at {r.hook} (strengths {r.strengths} × typical norm "
                     f"{r.typical_norm}; native = {r.native_method} probe at the same hook)")
        for name, j in r.by_judge.items():
            e = j.effects
            lines.append(f"  judged by {name:<24} effects: native {e.native}, translated {e.translated}, random "
                         f"{e.random}, prompt {e.prompt}")
            if j.native_steers:
                lines.append(f"    efficacy {j.efficacy}  random_efficacy {j.random_efficacy}  "
                             f"prompt_effect {j.prompt_effect}")
            else:
                lines.append(f"    ratios undefined: {j.reason}")
        lines.append(f"  kl_ratio {r.kl_ratio} ({r.kl_ratio_basis})")
    s = result.summary
    lines.append(f"summary: native steers {s.native_steers}/{s.concepts} concepts; efficacy >= 0.5 on "
                 f"{s.efficacy_at_least_half} of them (target: at least half); random within 0.1 on "
                 f"{s.random_efficacy_within_tenth}; KL ratio <= 2 on {s.kl_ratio_within_2}")
    return "\n".join(lines)


def write_causal(result: CausalResult, directory: str | Path) -> dict[str, Path]:
    """Save ``causal.json`` and render ``report.html`` beside it."""
    return {"json": result.save(directory), "report": write_report(causal_html(result), directory)}


def _verdict(page: Page, value, ok) -> str:
    return page.verdict(None if value is None else ok(value))


def causal_html(result: CausalResult) -> Page:
    """The report page of a causal check: efficacy against its targets, KL at matched effect, by judge."""
    s = result.summary
    page = Page("Causal check of translated concepts",
                f"{s.concepts} concept(s); B's native direction steers {s.native_steers}; efficacy ≥ 0.5 on "
                f"{s.efficacy_at_least_half} (target: at least half of those), random within 0.1 on "
                f"{s.random_efficacy_within_tenth}, KL ratio ≤ 2 on {s.kl_ratio_within_2}.")
    page.paragraph("B is steered at the translation's hook along three unit directions with the same added norm: "
                   "the translated concept, B's native concept (found from the labels at that hook) and a random "
                   "direction. Efficacy = effect(translated) / effect(native) at the largest strength; "
                   "random_efficacy = effect(random) / effect(native) must be near 0; kl_ratio compares the KL side "
                   "effect of the translated direction with the native one's at matched effect. " + EFFECT_UNIT
                   + ". Ratios are undefined where the native direction does not steer.", muted=True)
    page.heading("Against the targets")
    rows = []
    for r in result.concepts:
        rows.append([r.concept, f"{r.source} → {r.target}", r.hook, r.native_steers, r.efficacy,
                     _verdict(page, r.efficacy, lambda v: v >= 0.5), r.random_efficacy,
                     _verdict(page, r.random_efficacy, lambda v: abs(v) <= 0.1), r.prompt_effect, r.kl_ratio,
                     _verdict(page, r.kl_ratio if r.native_steers else None, lambda v: v <= 2)])
    page.table(["concept", "A → B", "hook", "native steers", "efficacy", "≥ 0.5", "random efficacy", "≤ 0.1",
                "prompt / native", "KL ratio", "≤ 2"], rows, left=3, html_columns=(5, 7, 10))
    page.paragraph("A verdict is given only where B's native direction steers (as the summary counts).", muted=True)
    targets = next((r.targets for r in result.concepts if r.targets), {})
    if targets:
        page.paragraph("Targets: " + "; ".join(f"{k} {v}" for k, v in targets.items()) + ".", muted=True)
    if len(result.concepts) > 1:
        page.figure("bars", plots.bars([r.concept for r in result.concepts], [r.efficacy for r in result.concepts],
                                       ylabel="efficacy (A's judge)", reference=0.5),
                    "Efficacy per concept (missing: undefined, the native direction does not steer); dashed: the "
                    "0.5 target.")
    for r in result.concepts:
        _causal_concept(page, r)
    return page


def _causal_concept(page: Page, r: CausalRecord) -> None:
    page.heading(f"{r.concept}: {r.source} → {r.target} at {r.hook}")
    tr = r.translation or {}
    page.paragraph(f"Strengths {', '.join(f'{x:g}' for x in r.strengths)} × typical norm {fmt(r.typical_norm)}; "
                   f"native = {r.native_method} probe at the same hook. Translation: label AUROC in B "
                   f"{fmt(tr.get('auroc_transfer_test'))} (test), B's own probe {fmt(tr.get('auroc_native_target'))}, "
                   f"recovery {fmt(tr.get('recovery_test'))}.", muted=True)
    judges = list(r.by_judge)
    for name in judges:
        e = r.by_judge[name].effects
        page.figure("bars", plots.bars(["native", "translated", "random", "prompt"],
                                       [e.native, e.translated, e.random, e.prompt],
                                       ylabel=f"effect ({_short(name)})",
                                       reference=0.0),
                    f"Effects judged by {name} at strength {r.strengths[-1]:g} (the prompt baseline at none).")
    ratios = [(f"{n.partition(':')[0] or n} {what}", getattr(r.by_judge[n], attr)) for n in judges
              for what, attr in (("translated", "efficacy"), ("random", "random_efficacy"))]
    page.figure("bars", plots.bars([k for k, _ in ratios], [v for _, v in ratios], ylabel="÷ native effect",
                                   reference=0.5),
                "Efficacy (translated ÷ native) and random efficacy (random ÷ native) per judge; dashed: the 0.5 "
                "efficacy target (random must stay within 0.1). Missing bars: undefined. "
                + ", ".join(f"{n.partition(':')[0]} = {n}" for n in judges if ':' in n))
    if judges:
        a = judges[0]
        series = {}
        for cond in ("native", "translated"):
            pts = [(r2.effect.get(a), r2.kl) for r2 in sorted(r.rows_of(cond), key=lambda x: x.strength or 0.0)
                   if _finite(r2.effect.get(a)) and _finite(r2.kl)]
            if pts:
                series[cond] = ([0.0, *[p[0] for p in pts]], [0.0, *[p[1] for p in pts]])
        if series:
            page.figure("lines", plots.lines(series, xlabel=f"effect ({_short(a)})", ylabel="KL on neutral text"),
                        f"KL side effect against effect over the strengths (from the unsteered origin): the "
                        f"translated direction's KL over the native one's at matched effect is the KL ratio, "
                        f"{fmt(r.kl_ratio)} ({r.kl_ratio_basis or 'undefined'}).")
    page.heading("By judge", level=3)
    page.table(["judge", "native steers", "efficacy", "random efficacy", "prompt / native", "effect native",
                "translated", "random", "prompt", "why undefined"],
               [[n, j.native_steers, j.efficacy, j.random_efficacy, j.prompt_effect, j.effects.native,
                 j.effects.translated, j.effects.random, j.effects.prompt, j.reason or ""]
                for n, j in r.by_judge.items()], left=2)
    _judges_table(page, r.judges)
    _rows_table(page, r.rows, judges, "Every condition")
    _generations(page, r.rows, [], r.prompt_prefix)


# ---- re-rendering saved results -------------------------------------------------------------


@saved_as(SWEEP_FILE)
def _sweep(directory: Path) -> Page:
    return sweep_html(SweepResult.load(directory))


@saved_as(CAUSAL_FILE)
def _causal(directory: Path) -> Page:
    return causal_html(CausalResult.load(directory))


__all__ = ["REPORT", "causal_html", "causal_text", "sweep_html", "sweep_png", "sweep_table", "sweep_text",
           "write_causal", "write_sweep"]
