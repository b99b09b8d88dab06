"""An audit rendered for people: the terminal summary and ``report.html``."""

from __future__ import annotations

from interlingua.audit.results import Audit
from interlingua.report import plots
from interlingua.report.html import Page, fmt


def text(a: Audit, top: int = 10) -> str:
    """What ``interlingua audit`` prints: the calibration, the top inputs, the explanations, the groups."""
    cal = a.calibration
    lines = [f"audit of {a.concept}: {a.source} {a.source_hook} → {a.target} {a.target_hook}",
             f"  calibration on {cal.n} held-out sentences: s_B ≈ {cal.intercept:.3f} + {cal.slope:.3f}·s_A, residual "
             f"scale {cal.scale:.3f}; null: {a.null.draws} held-out sentences",
             f"  candidates: " + ", ".join(f"{k} {v}" for k, v in (a.per_source or {}).items())
             + f"; flagged (q ≤ {a.alpha}) {a.flagged}; explanations about the top {a.top}"]
    lines.append("  top disagreements (disagreement = |s_B − f(s_A)| / scale; p against the null):")
    for x in a.top_inputs(top):
        lines.append(f"    {x.rank + 1:>3}. {x.disagreement:7.2f}  p {x.p_value:.3g}  A {x.score_a:+.2f}  B {x.score_b:+.2f}  "
                     f"[{x.source}] {x.text[:90]!r}")
    sig = a.significant()
    lines.append(f"  explanations (AUROC for the top {a.top}; p corrected over {len(a.explanations or [])} features tried):")
    for e in (a.explanations or [])[:8]:
        lines.append(f"    {e.feature:<28} AUROC {e.auroc:.3f}  p {e.p_value:.3g}{'  *' if e in sig else ''}")
    for g in a.groups or []:
        lines.append(f"  group '{g.feature}': {len(g.inputs)} of the top inputs (mean disagreement {g.mean_disagreement})")
    if not sig:
        lines.append("  no explanation is significant: the top disagreements share none of the features tried.")
    return "\n".join(lines)


def html(a: Audit, top: int = 20) -> Page:
    cal = a.calibration
    page = Page(f"Audit: {a.concept}, {a.source} → {a.target}",
                f"A's concept at {a.source_hook}; its translation in B at {a.target_hook}. Disagreement = |s_B − f(s_A)| "
                f"/ scale with f fitted on {cal.n} held-out sentences (never ranked here).")
    page.heading("Candidates against the null")
    page.table(["candidates", "count"], [[k, v] for k, v in (a.per_source or {}).items()])
    runs = a.null.runs or []
    first = a.inputs[0] if a.inputs else None
    page.figure("histogram", plots.null_histogram(runs, first.disagreement if first else None,
                                                  p_value=first.p_value if first else None, band=a.null.band,
                                                  xlabel="disagreement"),
                f"Disagreement of {a.null.draws} held-out null sentences (same code path); red: the top input.")
    inputs = a.inputs or []
    topset = inputs[:a.top]
    rest = inputs[a.top:]
    page.figure("scatter", plots.scatter({"top disagreements": ([x.score_a for x in topset], [x.score_b for x in topset]),
                                          "other candidates": ([x.score_a for x in rest], [x.score_b for x in rest])},
                                         xlabel=f"A ({a.source}) score", ylabel=f"B ({a.target}) translated score",
                                         colors={"top disagreements": "#d62728", "other candidates": "#9e9e9e"}),
                f"Each candidate; the calibration is s_B ≈ {cal.intercept:.2f} + {cal.slope:.2f}·s_A.")
    page.paragraph(f"{a.flagged} inputs flagged at q ≤ {a.alpha} (Benjamini–Hochberg over {len(inputs)} candidates); "
                   f"explanations and groups are about the top {a.top}.", muted=True)

    page.heading("Which of A's concepts explain the disagreement")
    ex = (a.explanations or [])[:15]
    if ex:
        page.figure("bars", plots.bars([e.feature for e in ex], [e.auroc for e in ex], reference=0.5,
                                       ylabel="AUROC for the top set"),
                    "Each feature telling the top disagreements from the rest (0.5: no information).")
        page.table(["feature", "kind", "AUROC", "p (raw)", "p (corrected)", "mean z in top", "significant"],
                   [[e.feature, e.kind, e.auroc, e.p_raw, e.p_value, e.mean_in_top,
                     e.p_value is not None and e.p_value <= a.alpha] for e in ex], left=2)
    if a.groups:
        page.heading("Groups of top inputs sharing an explanation", level=3)
        page.table(["explanation", "inputs (ranks)", "mean disagreement"],
                   [[g.feature, ", ".join(str(r + 1) for r in (g.inputs or [])[:30]), g.mean_disagreement]
                    for g in a.groups])

    page.heading("Top disagreements")
    page.table(["rank", "source", "disagreement", "p", "q", "A score", "B score", "expected B", "text"],
               [[x.rank + 1, x.source, x.disagreement, x.p_value, x.q_value, x.score_a, x.score_b, x.expected_b,
                 x.text[:160]] for x in inputs[:top]], left=2, text_columns=(8,))
    yours = [x for x in inputs if x.source == "user"]
    if yours:
        page.heading("Where your texts landed", level=3)
        page.table(["rank", "disagreement", "p", "A score", "B score", "text"],
                   [[x.rank + 1, x.disagreement, x.p_value, x.score_a, x.score_b, x.text[:160]] for x in yours[:50]],
                   text_columns=(5,))
    for x in inputs[:top]:
        if not x.words:
            continue
        page.heading(f"#{x.rank + 1} ({x.source}): disagreement {fmt(x.disagreement)}, A {fmt(x.score_a)}, "
                     f"B {fmt(x.score_b)}", level=3)
        page.side_by_side(
            Page.tokens_html(x.text, [[w.start, w.end, w.score_a] for w in x.words], f"A: {a.source}", "A"),
            Page.tokens_html(x.text, [[w.start, w.end, w.score_b] for w in x.words], f"B: {a.target}", "B"))
    if a.seconds is not None:
        page.paragraph(f"{a.seconds:.1f} s.", muted=True)
    return page
