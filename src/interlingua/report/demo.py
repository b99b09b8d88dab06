"""The demo's pages: a Markdown table (``report.md``), the terminal summary and ``report.html``.

Each row is a :class:`~interlingua.demo.DemoRow`; its translation's own page is written in the
row's directory (:func:`write_all`), and the demo page links to it.
"""

from __future__ import annotations

from pathlib import Path

from interlingua import _io
from interlingua.demo import DemoResult, DemoRow
from interlingua.report import plots, translation, write_report
from interlingua.report.html import Page, esc

HEADER = ("| concept | kind | direction | B hook | fidelity test | fidelity OOD | AUROC test: transfer / native B / "
          "bag of words | recovery test | AUROC OOD: transfer / native B / bag of words | recovery OOD | controls | s |\n|"
          + "---|" * 12)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def controls_line(row: DemoRow) -> str:
    return "; ".join(f"{name} {'ok' if c.passed else 'FAIL'}" + (f" p={c.p_value:.3g}" if c.p_value is not None else "")
                     for name, c in row.result.controls.items())


def markdown_row(row: DemoRow) -> str:
    m = row.result.metrics
    t, o = m.test, m.ood
    def g(r, attr):  # noqa: E306
        return getattr(r, attr) if r is not None else None
    return (f"| {m.concept} | {row.kind} | {m.source} → {m.target} | {m.target_hook} | "
            f"{_f(t.fidelity)}{_ci(t.fidelity_ci)} | {_f(g(o, 'fidelity'))}{_ci(g(o, 'fidelity_ci'))} | "
            f"{_f(t.auroc)} / {_f(t.auroc_native_target)} / {_f(t.auroc_bag_of_words)} | "
            f"{_f(t.recovery)}{_ci(t.recovery_ci)} | "
            f"{_f(g(o, 'auroc'))} / {_f(g(o, 'auroc_native_target'))} / {_f(g(o, 'auroc_bag_of_words'))} | "
            f"{_f(g(o, 'recovery'))}{_ci(g(o, 'recovery_ci'))} | {controls_line(row)} | {row.seconds:.0f} |")


def table(result: DemoResult) -> str:
    return "\n".join([HEADER, *(markdown_row(r) for r in result.translations)])


def text(result: DemoResult) -> str:
    """What the demo prints at the end: the table and each target, met or not."""
    lines = ["", table(result)]
    for t in result.summary.targets:
        lines.append(f"target {t.target}: {_f(t.measured)} over {t.rows} (goal {t.goal}) "
                     f"{'met' if t.met else 'NOT met'}")
    return "\n".join(lines)


def markdown(result: DemoResult) -> str:
    s = result.summary
    shared = result.shared_text or {}
    lines = [
        "# interlingua demo", "",
        f"Models: {result.models[0]} and {result.models[1]} ({result.dtype}); {s.seconds:.0f} s. "
        f"Shared text: {shared.get('corpus_docs')} bundled-corpus documents"
        + (f" and {shared['generated_per_concept_and_model']} texts the source model wrote"
           if shared.get("generated_per_concept_and_model") else "")
        + "; no labelled text (label-free). "
        + (f"Each concept's splits are cut to their first {result.max_pairs_per_split} pairs (the full splits: "
           "benchmarks/translate.py)." if result.max_pairs_per_split else ""), "",
        "**Fidelity** = AUROC of B's translated score against the source model's own decisions on texts no step "
        "was fitted on; **recovery** = (AUROC_transfer − 0.5) / (AUROC_native_B − 0.5) against B's own probe "
        "(found from the labels on the same layers). Intervals are paired bootstrap 95% intervals over test pairs; "
        "the bag-of-words column is a Naive Bayes classifier trained on the concept's train texts. Must-fail "
        "controls are permutation tests (p over 200 null draws, whole documents reassigned or labels permuted); "
        "they pass at p ≤ 0.01. Each direction's own page: `DIRECTION/report.html`.", "", table(result), "",
        "## Targets", "", "| target | goal | measured | over | met |", "|---|---|---|---|---|",
        *(f"| {t.target} | {t.goal} | {_f(t.measured)} | {t.rows} | {'yes' if t.met else 'no'} |" for t in s.targets),
        "", "## Controls", ""]
    for r in result.translations:
        m = r.result.metrics
        for name, c in r.result.controls.items():
            lines.append(f"- {m.concept} {m.source} → {m.target}: **{name}** ({c.kind}) "
                         f"{'passed' if c.passed else 'FAILED'}: {c.statistic} {c.value}"
                         + (f", p {c.p_value}" if c.p_value is not None else "")
                         + (f", difference CI {c.difference_ci}" if c.difference_ci else "")
                         + f" — must: {c.must}")
    notes = [f"- {r.result.metrics.concept} {r.result.metrics.source} → {r.result.metrics.target}: "
             f"{r.result.metrics.test.recovery_note}" for r in result.translations if r.result.metrics.test.recovery_note]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def html(result: DemoResult) -> Page:
    s = result.summary
    page = Page("interlingua demo", f"{result.models[0]} ↔ {result.models[1]} ({result.dtype}), label-free shared "
                f"text; {s.seconds:.0f} s")
    page.heading("Every direction")
    rows = []
    for r in result.translations:
        m = r.result.metrics
        link = f"<a href='{esc(r.directory)}/report.html'>{esc(m.concept)}</a>"
        rows.append([link, r.kind, f"{m.source} → {m.target}", m.target_hook, m.test.fidelity, m.test.fidelity_ci,
                     m.ood and m.ood.fidelity, m.test.auroc, m.test.auroc_native_target, m.test.auroc_bag_of_words,
                     m.test.recovery, page.verdict(all(c.passed for c in r.result.controls.values())), r.seconds])
    page.table(["concept", "kind", "direction", "B hook", "fidelity test", "95% CI", "fidelity OOD",
                "label AUROC test", "B's own probe", "bag of words", "recovery test", "all controls", "s"], rows,
               left=4, html_columns=(0, 11))
    labels = [f"{r.result.metrics.concept}\n{r.result.metrics.source[:6]}→{r.result.metrics.target[:6]}"
              for r in result.translations]
    page.figure("bars", plots.bars(labels, [r.result.metrics.test.fidelity for r in result.translations],
                                   errors=[r.result.metrics.test.fidelity_ci for r in result.translations],
                                   ylabel="fidelity (test)", reference=0.5),
                "Fidelity on test per direction, with its paired bootstrap 95% interval (dashed: chance).")
    for r in result.translations:
        null = r.result.fidelity_null("test")
        if null is not None and null.runs:
            m = r.result.metrics
            page.figure("histogram", plots.null_histogram(null.runs, null.value, p_value=null.p_value, band=null.band,
                                                          xlabel="fidelity (test)"),
                        f"{m.concept} {m.source} → {m.target}: fidelity against the shuffled-pairing null")
    page.heading("Targets")
    page.table(["target", "goal", "measured", "over", "met"],
               [[t.target, t.goal, t.measured, t.rows, page.verdict(t.met)] for t in s.targets], html_columns=(4,))
    page.paragraph(f"Tokens read: {', '.join(f'{k} {v:,}' for k, v in (s.tokens_read or {}).items())}.", muted=True)
    return page


def write_all(result: DemoResult, out: str | Path) -> Path:
    """``report.md`` and ``report.html`` of the demo, and each direction's ``report.html``; the demo page's path."""
    out = Path(out)
    for r in result.translations:
        write_report(translation.html(r.result), out / r.directory)
    _io.write_text(out / "report.md", markdown(result))
    return write_report(html(result), out)
