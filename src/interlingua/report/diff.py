"""A model diff rendered for people: the terminal list and ``report.html``."""

from __future__ import annotations

from pathlib import Path

from interlingua.diff import ModelDiff
from interlingua.report import plots, saved_as
from interlingua.report.html import Page, fmt


def _prior(c) -> str:
    p = c.prior
    if p is None:
        return "–"
    return (f"{p.base.rate:.2f} → {p.tuned.rate:.2f} ({p.difference:+.2f}, 95% [{p.interval[0]:+.2f}, "
            f"{p.interval[1]:+.2f}])")


def text(d: ModelDiff, top: int = 3) -> str:
    """What ``interlingua diff`` prints: the ranked concepts, then the top concept's top disagreements."""
    rows = d.ranked()
    lines = [f"diff: {d.base} (base) → {d.tuned} (tuned), {len(rows)} concepts, {d.generations} generations per model",
             f"  ranked by {d.ranking}",
             f"  {'':>3}  {'concept':<26} {'change':>8} {'flagged':>9} {'fidelity':>8} {'ood':>6}  prior shift "
             "(fires on generations: base → tuned)"]
    for c in rows:
        if c.skipped:
            lines.append(f"  {c.rank + 1:>3}. {c.concept:<26} skipped: {c.skipped}")
            continue
        lines.append(f"  {c.rank + 1:>3}. {c.concept:<26} {c.change:8.3f} {c.flagged:>4}/{c.candidates:<4} "
                     f"{fmt(c.fidelity_test):>8} {fmt(c.fidelity_ood):>6}  {_prior(c)}")
    changed = d.changed()
    lines.append(f"  {len(changed)} of {len(rows)} concepts changed (an input flagged at q ≤ {d.alpha})"
                 + (f"; most: {changed[0].concept}" if changed else ""))
    first = next((c for c in rows if not c.skipped), None)
    if first is not None and first.top_inputs:
        lines.append(f"  top disagreements of {first.concept} ({first.base_hook} → {first.tuned_hook}):")
        for x in first.top_inputs[:top]:
            lines.append(f"    {x.disagreement:8.2f}  q {fmt(x.q_value)}  base {x.score_a:+.2f}  tuned {x.score_b:+.2f}  "
                         f"{x.text[:90]!r}")
        e = first.top_explanation
        if e is not None:
            lines.append(f"  top explanation: {e.feature} (AUROC {fmt(e.auroc)}, corrected p {fmt(e.p_value)}"
                         f"{', significant' if first.explanation_significant else ', not significant'})")
    return "\n".join(lines)


def html(d: ModelDiff) -> Page:
    rows = d.ranked()
    done = [c for c in rows if not c.skipped]
    page = Page(f"Model diff: {d.base} → {d.tuned}",
                f"Every concept found in {d.base} and read in {d.tuned} with the base's own readout (same tokenizer and "
                f"architecture: every activation pairs with itself) and audited; ranked by {d.ranking}.")
    page.heading("Concepts, most changed first")
    page.table(["rank", "concept", "change", "flagged", "candidates", "fidelity (test)", "fidelity (OOD)",
                "base hook", "tuned hook", "fires on base gens", "fires on tuned gens", "shift", "shift 95% CI",
                "top explanation"],
               [[c.rank + 1, c.concept, c.change, c.flagged, c.candidates, c.fidelity_test, c.fidelity_ood,
                 c.base_hook, c.tuned_hook, c.prior.base.rate if c.prior else None,
                 c.prior.tuned.rate if c.prior else None, c.prior.difference if c.prior else None,
                 c.prior.interval if c.prior else None,
                 (c.top_explanation.feature + (" *" if c.explanation_significant else ""))
                 if c.top_explanation else None] for c in done], left=2)
    skipped = [c for c in rows if c.skipped]
    if skipped:
        page.table(["concept", "skipped because"], [[c.concept, c.skipped] for c in skipped], text_columns=(1,))
    if done:
        labels = [c.concept for c in done]
        page.figure("bars", plots.bars(labels, [c.change for c in done], ylabel="change"),
                    "Change: flagged departures in units of the concept's spread, per candidate (the ranking).")
        page.figure("bars", plots.bars(labels, [c.flagged for c in done], ylabel="flagged inputs"),
                    f"Inputs flagged at q ≤ {d.alpha} (Benjamini–Hochberg against held-out null sentences).")
        page.figure("bars", plots.bars(labels, [c.fidelity_test for c in done], ylabel="fidelity (test)",
                                       reference=1.0),
                    "Fidelity of the tuned model's reading of the concept to the base's, on the concept's test texts.")
        with_prior = [c for c in done if c.prior]
        if with_prior:
            page.heading("Prior shift: how often each model's own generations activate the concept")
            page.figure("bars", plots.bars([c.concept for c in with_prior], [c.prior.difference for c in with_prior],
                                           errors=[c.prior.interval for c in with_prior], reference=0.0,
                                           ylabel="fires on tuned − on base"),
                        f"Difference of firing rates (score > 0) on {d.generations} generations per model, same "
                        "prompts and seed; bars: 95% Newcombe intervals.")
            page.figure("bars", plots.bars([f"{c.concept} ({who})" for c in with_prior for who in ("base", "tuned")],
                                           [r.rate for c in with_prior for r in (c.prior.base, c.prior.tuned)],
                                           errors=[r.interval for c in with_prior for r in (c.prior.base, c.prior.tuned)],
                                           ylabel="fraction of generations"),
                        "Each model's firing rate with its 95% Wilson interval.")
        first = done[0]
        if first.top_inputs:
            page.heading(f"Top disagreements of {first.concept}")
            page.paragraph(f"Base {first.base_hook} → tuned {first.tuned_hook}; disagreement = |s_tuned − f(s_base)| "
                           "/ scale; q: Benjamini–Hochberg against the held-out null.", muted=True)
            page.table(["rank", "source", "disagreement", "q", "base score", "tuned score", "expected tuned", "text"],
                       [[x.rank + 1, x.source, x.disagreement, x.q_value, x.score_a, x.score_b, x.expected_b,
                         x.text[:160]] for x in first.top_inputs], left=2, text_columns=(7,))
            for x in first.top_inputs:
                if not x.words:
                    continue
                page.heading(f"#{x.rank + 1}: disagreement {fmt(x.disagreement)}", level=3)
                page.side_by_side(
                    Page.tokens_html(x.text, [[w.start, w.end, w.score_a] for w in x.words], f"base: {d.base}", "A"),
                    Page.tokens_html(x.text, [[w.start, w.end, w.score_b] for w in x.words], f"tuned: {d.tuned}", "B"))
            e = first.top_explanation
            if e is not None:
                page.paragraph(f"Top explanation: {e.feature} (AUROC {fmt(e.auroc)}, corrected p {fmt(e.p_value)}; "
                               f"{'significant' if first.explanation_significant else 'not significant'}).")
    if d.seconds is not None:
        page.paragraph(f"{d.seconds:.1f} s.", muted=True)
    return page


@saved_as("diff.json")
def _render(directory: Path) -> Page:
    return html(ModelDiff.load(directory))
