"""A translation rendered for people: the terminal summary and the HTML report.

Both read a translation's typed results (:class:`~interlingua.translate.results.TranslationResult`,
``Translation.result``), so a saved ``translation.json`` is drawn without loading its concepts. Controls and methods are
iterated as registered, so a new one appears in every table without a change here.
"""

from __future__ import annotations

from interlingua.report import plots
from interlingua.report.html import Page, fmt
from interlingua.translate.results import SPLITS, ControlResult, TranslationMetrics, TranslationResult


def _ci(ci) -> str:
    return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def control_detail(c: ControlResult) -> str:
    """One line on what a control measured, by kind."""
    if c.kind == "must_fail":
        return f"{c.statistic} {c.value}, p {c.p_value} over {c.draws} null draws"
    if c.kind == "floor":
        return f"floor {c.value} vs real {c.real}, difference CI {c.difference_ci}"
    return f"{c.statistic} {c.value}"


def text(tr: TranslationResult) -> str:
    """The terminal summary of a translation (what ``interlingua translate`` prints)."""
    m: TranslationMetrics = tr.metrics
    st = m.shared_text
    sources = ", ".join(f"{k} {v}" for k, v in (st.per_source or {}).items())
    lines = [f"{m.concept}: {m.source} {m.source_hook} → {m.target} {m.target_hook} "
             f"({'label-free' if m.label_free else 'with out-of-fold concept texts'} shared text: {sources} "
             f"documents, {m.n_words:,} aligned words)"]
    sel = m.selection
    lines.append(f"  B hook and λ chosen by the cross-validated rank correlation with A's score over {sel.folds} "
                 f"folds of whole documents: {sel.hook_b}, λ {sel.lam:g} (ρ {sel.cv_rho}, R² {sel.cv_r2}; a "
                 "selection criterion)")
    for split in SPLITS:
        r = m.split(split)
        if r is None:
            continue
        null = tr.fidelity_null(split)
        p = f", null p {null.p_value:.3g} over {null.draws} draws" if null and null.p_value is not None else ""
        fid_text = (f"{_f(r.fidelity)}{_ci(r.fidelity_ci)}{p}" if r.fidelity is not None
                    else f"undefined ({r.fidelity_undefined})")
        lines.append(f"  {split:<4} fidelity to A {fid_text}; rank correlation {_f(r.rank_correlation)}")
        rec_text = (f"{_f(r.recovery)}{_ci(r.recovery_ci)}" if r.recovery is not None
                    else f"undefined ({r.recovery_undefined or 'no native probe'})")
        lines.append(f"       label AUROC: A {_f(r.auroc_source)}, translated B {_f(r.auroc)}{_ci(r.auroc_ci)}, "
                     f"B's own probe {_f(r.auroc_native_target)}, bag of words {_f(r.auroc_bag_of_words)} → "
                     f"recovery {rec_text}" + (f" ({r.recovery_note})" if r.recovery_note else ""))
    lines.append("  other methods (A's readout carried into B):")
    for name, meth in (m.methods or {}).items():
        if name == "readout_transfer":
            continue
        t, o = meth.test, meth.ood
        extra = meth.extra
        lines.append(f"    {name:<18} fidelity test {_f(t and t.fidelity)} / OOD {_f(o and o.fidelity)}; label AUROC "
                     f"{_f(t and t.auroc)} / {_f(o and o.auroc)}"
                     + (f"; held-out R² {extra['r2_heldout']} vs linear {extra['linear_r2_heldout']}"
                        if "r2_heldout" in extra else ""))
    rt = m.retrieval
    if rt is not None:
        lines.append(f"  direction retrieval: rank {rt.rank} of {rt.k} built-in concepts' native B directions "
                     f"(chance top-1 {rt.chance_top1}); cosine {rt.cosine_true}; nearest "
                     + ", ".join(f"{n} {c}" for n, c in rt.nearest or []))
    for search, what in ((m.neuron_search, "MLP neurons"), (m.sae_latent_search, "SAE latents")):
        if search is None:
            continue
        if search.skipped:
            lines.append(f"  {what}: skipped ({search.skipped})")
            continue
        lines.append(f"  {what} ({search.n_units}): best |corr| {search.best_abs_corr} (unit {search.top[0]['unit']}; "
                     f"null p {search.p_value:.3g}), alone as a detector AUROC test {search.best_unit_auroc_test}")
    for name, c in tr.controls.items():
        lines.append(f"  control {name:<20} {'ok  ' if c.passed else 'FAIL'} ({c.kind}) {control_detail(c)}")
    lines.append("  B layer sweep (cross-validated rank correlation with A's score at its best λ): "
                 + ", ".join(f"{r.hook_b} {r.cv_rho}" for r in tr.layer_map))
    ck = m.cka_debiased_chosen_pair
    if ck is not None:
        lines.append(f"  debiased CKA {m.source_hook} × {m.target_hook}: {ck.value} (document-permutation null p "
                     f"{ck.p_value}, band {ck.band})")
    rows, cols, grid = layer_pair_grid(tr)
    if rows:
        lines.append("  layer-pair map, debiased CKA on standardised activations (A rows × B columns):")
        lines.append("    " + " " * 16 + "".join(f"{h:>15}" for h in cols))
        for ha, vals in zip(rows, grid):
            lines.append(f"    {ha:<16}" + "".join(f"{v:>15.3f}" if v is not None else f"{'-':>15}" for v in vals))
    if m.cost is not None:
        lines.append(f"  {m.cost.seconds:.0f} s")
    return "\n".join(lines)


def layer_pair_grid(tr: TranslationResult) -> tuple[list[str], list[str], list[list[float | None]]]:
    """The layer-pair map as (A hooks, B hooks, CKA[A][B])."""
    rows = list(dict.fromkeys(r.hook_a for r in tr.layer_pair_map))
    cols = list(dict.fromkeys(r.hook_b for r in tr.layer_pair_map))
    value = {(r.hook_a, r.hook_b): r.cka_debiased for r in tr.layer_pair_map}
    return rows, cols, [[value.get((a, b)) for b in cols] for a in rows]


def html(tr: TranslationResult) -> Page:
    """The report page of one translation."""
    m = tr.metrics
    page = Page(f"{m.concept}: {m.source} → {m.target}",
                f"A's concept at {m.source_hook}, read in B at {m.target_hook}; "
                f"{'label-free' if m.label_free else 'with out-of-fold concept texts in the'} shared text "
                f"({m.n_texts} documents, {m.n_words:,} aligned words).")
    _headline(page, tr)
    _nulls(page, tr)
    _controls(page, tr)
    _agreement(page, tr)
    _layers(page, tr)
    _methods(page, tr)
    _evidence(page, tr)
    return page


def _headline(page: Page, tr: TranslationResult) -> None:
    m = tr.metrics
    page.heading("Does B's translated score reproduce A's concept?")
    page.paragraph("Fidelity is the AUROC of B's translated score against A's decisions on texts no step was fitted "
                   "on; the labels come second. Every number has its paired bootstrap 95% interval; the null is the "
                   "shuffled-pairing control (A's scores given to other documents, the whole path re-run).",
                   muted=True)
    rows = []
    for split in SPLITS:
        r = m.split(split)
        if r is None:
            continue
        null = tr.fidelity_null(split)
        rows.append([split, r.fidelity, r.fidelity_ci, None if null is None else null.p_value, r.rank_correlation,
                     r.auroc_source, r.auroc, r.auroc_ci, r.auroc_native_target, r.auroc_bag_of_words, r.recovery,
                     r.recovery_ci])
    page.table(["split", "fidelity", "95% CI", "null p", "rank corr.", "label AUROC: A", "translated B", "95% CI",
                "B's own probe", "bag of words", "recovery", "95% CI"], rows)


def _nulls(page: Page, tr: TranslationResult) -> None:
    figs = []
    for name, c in tr.controls.items():
        for split, tests in (c.splits or {}).items():
            for stat, null in tests.items():
                if null.runs:
                    figs.append((f"{stat} on {split} against the {name} null ({c.extra.get('null', '')})",
                                 plots.null_histogram(null.runs, null.value, p_value=null.p_value, band=null.band,
                                                      xlabel=f"{stat} ({split})")))
    if figs:
        page.heading("Each headline number against its null")
        for caption, svg in figs:
            page.figure("histogram", svg, caption)


def _controls(page: Page, tr: TranslationResult) -> None:
    if not tr.controls:
        return
    page.heading("Controls (each a test that can fail)")
    rows = [[name, c.kind, c.statistic, c.value, c.real, c.p_value, c.difference_ci, page.verdict(c.passed), c.must]
            for name, c in tr.controls.items()]
    page.table(["control", "kind", "statistic", "value", "real", "p", "difference CI", "verdict", "what it must do"],
               rows, left=3, html_columns=(7,), text_columns=(8,))


def _agreement(page: Page, tr: TranslationResult) -> None:
    m = tr.metrics
    if tr.scores:
        page.heading("Agreement: A's score against B's translated score, per text")
        for split, s in tr.scores.items():
            series = {}
            for label, name in ((1, "label +"), (0, "label −")):
                keep = [i for i, y in enumerate(s.labels or []) if y == label]
                series[name] = ([s.score_a[i] for i in keep], [s.score_b[i] for i in keep])
            page.figure("scatter", plots.scatter(series, xlabel=f"A ({m.source}) score", ylabel=f"B ({m.target}) "
                                                 "translated score", colors={"label +": "#d62728",
                                                                            "label −": "#1f77b4"}),
                        f"{split}: {len(s.texts or [])} texts; dashed lines are each model's threshold (0)")
    if tr.examples:
        page.heading("Where the two agree and disagree most")
        page.paragraph("Texts ranked by |z_A − z_B| (scores standardised per split; a display choice, not a test). "
                       "Each word is coloured by the model's concept score read at its last token (red positive, "
                       "blue negative, per model's own scale).", muted=True)
        for e in tr.examples:
            page.heading(f"{e.split} · {e.kind} · text {e.index} (label {e.label}): A {fmt(e.score_a)}, "
                         f"B {fmt(e.score_b)}", level=3)
            if e.tokens_a and e.tokens_b:
                page.side_by_side(Page.tokens_html(e.text, e.tokens_a.spans or [], f"A: {m.source}", "A"),
                                  Page.tokens_html(e.text, e.tokens_b.spans or [], f"B: {m.target}", "B"))
            else:
                page.paragraph(e.text)


def _layers(page: Page, tr: TranslationResult) -> None:
    m = tr.metrics
    rows, cols, grid = layer_pair_grid(tr)
    if not rows and not tr.layer_map:
        return
    page.heading("Layers")
    if rows:
        mark = (rows.index(m.source_hook), cols.index(m.target_hook)) \
            if m.source_hook in rows and m.target_hook in cols else None
        page.figure("heatmap", plots.heatmap(grid, rows, cols, mark=mark, xlabel=f"B ({m.target})",
                                             ylabel=f"A ({m.source})", label="debiased CKA"),
                    "Layer-pair map: debiased CKA on standardised activations at the aligned words; the chosen "
                    "pair is outlined.")
    if tr.layer_map:
        xs = [int(r.hook_b.rsplit(".", 1)[-1]) if r.hook_b.rsplit(".", 1)[-1].isdigit() else i
              for i, r in enumerate(tr.layer_map)]
        page.figure("lines", plots.lines({"cross-validated ρ": (xs, [r.cv_rho for r in tr.layer_map]),
                                          "cross-validated R²": (xs, [r.cv_r2 for r in tr.layer_map])},
                                         xlabel="B layer", ylabel="with A's score"),
                    f"B's candidate hooks (selection criterion: ρ); chosen {m.target_hook}.")


def _methods(page: Page, tr: TranslationResult) -> None:
    methods = tr.metrics.methods or {}
    if not methods:
        return
    page.heading("Methods")
    rows = [[name, meth.target_hook, meth.test and meth.test.fidelity, meth.ood and meth.ood.fidelity,
             meth.test and meth.test.auroc, meth.ood and meth.ood.auroc] for name, meth in methods.items()]
    page.table(["method", "B hook", "fidelity test", "fidelity OOD", "label AUROC test", "label AUROC OOD"], rows,
               left=2)
    labels = list(methods)
    page.figure("bars", plots.bars(labels, [methods[n].test and methods[n].test.fidelity for n in labels],
                                   errors=[methods[n].test and methods[n].test.fidelity_ci for n in labels],
                                   ylabel="fidelity (test)", reference=0.5), "Fidelity on test per method "
                "(bars: 95% interval; dashed: chance).")


def _evidence(page: Page, tr: TranslationResult) -> None:
    m = tr.metrics
    page.heading("Evidence beside the readout")
    rows = []
    if m.retrieval is not None:
        rows.append(["direction retrieval", f"rank {m.retrieval.rank} of {m.retrieval.k}",
                     f"chance top-1 {fmt(m.retrieval.chance_top1)}", m.retrieval.cosine_true])
    for search, what in ((m.neuron_search, "MLP neurons"), (m.sae_latent_search, "SAE latents")):
        if search is not None:
            rows.append([what, "skipped" if search.skipped else f"best |corr| {fmt(search.best_abs_corr)}",
                         search.skipped or f"null p {fmt(search.p_value)}", search.best_unit_auroc_test])
    if m.cka_debiased_chosen_pair is not None:
        ck = m.cka_debiased_chosen_pair
        rows.append([f"debiased CKA {m.source_hook} × {m.target_hook}", fmt(ck.value), f"null p {fmt(ck.p_value)}",
                     ck.band])
    page.table(["evidence", "value", "against", "detail"], rows, left=3)
    if m.cost is not None:
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in (m.cost.seconds_per_step or {}).items())
        page.paragraph(f"Cost: {m.cost.seconds:.1f} s ({steps}); tokens read: A {m.cost.tokens_read_source:,}, "
                       f"B {m.cost.tokens_read_target:,}.", muted=True)
