"""SAE evaluations and latent matchings rendered for people: terminal text and the HTML report.

* ``sae eval`` (:class:`~interlingua.sae.evaluate.SAEEval`): the headline metrics (beside the
  random-init baseline's when there is one), the latent density histogram and one card per latent
  with its top-activating snippets, the firing token in ``<mark>``;
* ``sae match`` (:class:`~interlingua.sae.match.SAEMatch`): the matched-correlation distribution
  against the shuffled-word null, the fraction above the threshold against each shuffle's, and
  the best pairs.

Both read typed results only; every string from data (snippet text above all) is escaped.
"""

from __future__ import annotations

from pathlib import Path

from interlingua.report import plots, saved_as
from interlingua.report.html import Page, esc, fmt
from interlingua.sae.evaluate import LatentSnippets, SAEEval, SAEEvalSide
from interlingua.sae.match import MatchSummary, SAEMatch

EVAL_FILE = "sae_eval.json"
MATCH_FILE = "sae_match.json"

# (section, field, label) of the metrics table, in order
ROWS = [("reconstruction", "fvu", "FVU (lower is better)"), ("reconstruction", "l0", "L0"),
        ("reconstruction", "dead_fraction", "dead fraction"), ("reconstruction", "dense_fraction", "dense fraction"),
        ("reconstruction", "l2_ratio", "‖x̂‖ / ‖x‖"),
        ("reconstruction", "relative_reconstruction_bias", "reconstruction bias γ (>1: shrunk)"),
        ("downstream", "ce_clean", "CE clean (nats)"), ("downstream", "ce_sae", "CE with SAE"),
        ("downstream", "ce_zero", "CE zero-ablated"), ("downstream", "ce_recovered", "CE recovered"),
        ("downstream", "kl_sae", "KL with SAE"), ("downstream", "kl_recovered", "KL recovered")]


# --------------------------------------------------------------------------------------------
# saving and loading


def save_eval(result: SAEEval, directory: str | Path) -> Path:
    return result.write(Path(directory) / EVAL_FILE)


def load_eval(directory: str | Path) -> SAEEval:
    return SAEEval.read(Path(directory) / EVAL_FILE, "run `interlingua sae eval --out DIR` again.")


def match_path(out: str | Path) -> Path:
    """Where ``sae match --out OUT`` saves: ``OUT/sae_match.json``, or ``OUT`` itself when it names a .json file."""
    out = Path(out)
    return out if out.suffix.lower() == ".json" and not out.is_dir() else out / MATCH_FILE


def save_match(result: SAEMatch, out: str | Path) -> Path:
    return result.write(match_path(out))


def load_match(directory: str | Path) -> SAEMatch:
    return SAEMatch.read(Path(directory) / MATCH_FILE, "run `interlingua sae match --out DIR` again.")


@saved_as(EVAL_FILE)
def _saved_eval(directory: Path) -> Page:
    return eval_html(load_eval(directory))


@saved_as(MATCH_FILE)
def _saved_match(directory: Path) -> Page:
    return match_html(load_match(directory))


# --------------------------------------------------------------------------------------------
# sae eval


def _value(side: SAEEvalSide, section: str, key: str):
    part = getattr(side, section, None)
    return None if part is None else getattr(part, key, None)


def _columns(r: SAEEval) -> list[tuple[str, SAEEvalSide]]:
    return [("main", r.main)] + ([("random-init", r.baseline)] if r.baseline is not None else [])


def eval_text(r: SAEEval) -> str:
    """The terminal summary of ``sae eval``."""
    cols = _columns(r)
    m = r.main
    lines = [f"SAE {r.sae} on {m.model} {m.hook}, {r.texts} held-out documents, {m.reconstruction.n:,} tokens"]
    paired = len(cols) == 2
    lines.append(f"  {'':<36}" + "".join(f"{name:>14}" for name, _ in cols) + (f"{'main − random':>16}" if paired else ""))
    for section, key, label in ROWS:
        vals = [_value(c, section, key) for _, c in cols]
        if all(v is None for v in vals):
            continue
        line = f"  {label:<36}" + "".join(f"{v:>14.4f}" if isinstance(v, float) else f"{str(v):>14}" for v in vals)
        if paired and all(isinstance(v, float) for v in vals):
            line += f"{vals[0] - vals[1]:>+16.4f}"
        lines.append(line)
    if paired:
        lines.append("  (a metric separates the SAEs when the difference is large against its scale; CE recovered is "
                     "undefined where zero-ablation does not raise the loss)")
    hist = m.reconstruction.density_histogram
    if hist is not None:
        lines.append("  latent density: " + ", ".join(f"{b} {c}" for b, c in zip(hist.bins, hist.counts)))
    for lat in (m.latents or [])[:10]:
        if not lat.snippets:
            continue
        s = lat.snippets[0]
        lines.append(f"  latent {lat.latent:>6} ({lat.density:.2%}): …{s.left[-30:]}[[{s.token}]]{s.right[:30]}…"
                     .replace("\n", " "))
    if r.html:
        lines.append(f"  snippets: {r.html}")
    return "\n".join(lines)


def density_svg(sides: list[tuple[str, SAEEvalSide]]) -> str:
    """Latents per log10 firing-frequency bin (dead first), one bar series per SAE, counts on a log scale."""
    fig, ax = plots._figure(5.6, 3.2)
    hists = [(name, s.reconstruction.density_histogram) for name, s in sides
             if s.reconstruction is not None and s.reconstruction.density_histogram is not None]
    width = 0.8 / max(1, len(hists))
    labels: list[str] = []
    for k, (name, h) in enumerate(hists):
        labels = labels or list(h.bins)
        ax.bar([i + (k - (len(hists) - 1) / 2) * width for i in range(len(h.counts))], h.counts, width=width,
               color=plots.PALETTE[k % len(plots.PALETTE)], label=name)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_xlabel("firing frequency (log10 bins; dead = never fires)")
    ax.set_ylabel("latents (log scale)")
    plots._legend(ax)
    return plots.to_svg(fig)


def latent_card(lat: LatentSnippets) -> str:
    """One latent's card: its firing count and density, then each snippet with the token in ``<mark>``
    (opacity ∝ activation relative to the latent's top one). Everything from the text is escaped."""
    top = max((s.activation for s in lat.snippets), default=1.0) or 1.0
    rows = []
    for s in lat.snippets:
        alpha = 0.15 + 0.85 * max(0.0, s.activation) / top
        rows.append(f"<div class=snip data-doc={int(s.doc)} data-pos={int(s.pos)}>{esc(s.left)}"
                    f"<mark style='background:rgba(255,140,0,{alpha:.2f})' data-activation='{s.activation:.4g}'>"
                    f"{esc(s.token)}</mark>{esc(s.right)} <span class=muted>{esc(f'{s.activation:.3g}')}</span></div>")
    return (f"<div class=card data-latent={int(lat.latent)}><h3>latent {int(lat.latent)}</h3>"
            f"<p class=muted>fires on {int(lat.fires):,} tokens ({lat.density:.2%})</p>" + "".join(rows) + "</div>")


def eval_html(r: SAEEval, title: str | None = None) -> Page:
    """The ``sae eval`` report: metrics table, density histogram, latent cards."""
    m = r.main
    n = m.reconstruction.n if m.reconstruction else 0
    page = Page(f"SAE evaluation: {title or r.sae}",
                f"{r.sae} on {m.model} {m.hook}; {r.texts} held-out documents, {n:,} tokens"
                + (f"; baseline {r.baseline_sae} (random-init model)" if r.baseline_sae else ""))
    cols = _columns(r)
    paired = len(cols) == 2
    page.heading("Headline metrics")
    rows = []
    for section, key, label in ROWS:
        vals = [_value(c, section, key) for _, c in cols]
        if all(v is None for v in vals):
            continue
        diff = [vals[0] - vals[1] if all(isinstance(v, float) for v in vals) else None] if paired else []
        rows.append([label, *vals, *diff])
    page.table(["metric", *(name for name, _ in cols), *(["main − random"] if paired else [])], rows)
    if m.downstream is None:
        page.paragraph("Downstream loss not measured (--no-downstream).", muted=True)
    elif m.downstream.ce_recovered is None:
        page.paragraph("CE recovered is undefined here: zero-ablation does not raise the loss; read KL recovered.",
                       muted=True)
    page.heading("Latent density")
    page.figure("histogram", density_svg(cols),
                "Latents counted by how often they fire on the held-out tokens (log10 bins; the first bar counts "
                "dead latents). Counts on a log scale.")
    if m.latents:
        page.heading("Latent cards")
        page.paragraph(f"The {len(m.latents)} most frequently firing latents: each one's top activations in context, "
                       "the firing token highlighted (opacity ∝ activation relative to the latent's top).", muted=True)
        page.markup("<div class=cards>" + "".join(latent_card(lat) for lat in m.latents) + "</div>")
    return page


# --------------------------------------------------------------------------------------------
# sae match


def match_text(r: SAEMatch, min_fires: int | None = None) -> str:
    """The terminal summary of ``sae match``."""
    s = r.cross
    firing = f" firing ≥ {min_fires} times" if min_fires is not None else " kept"
    lines = [f"{r.a.model} {r.a.hook} ↔ {r.b.model} {r.b.hook}: {s.n_words:,} aligned words, {s.n_latents_a} × "
             f"{s.n_latents_b} latents{firing}",
             f"  Hungarian-matched correlation: mean {s.mean_matched_corr:.3f}, median {s.quantiles.get('0.5', 0):.3f}; "
             f"fraction > {s.threshold}: {s.fraction_above:.1%}"]
    if s.null_mean_matched_corr is not None:
        lines.append(f"  shuffled-word null: mean {s.null_mean_matched_corr:.3f}, fraction > {s.threshold}: "
                     f"max {s.null_fraction_above_max:.1%} over {len(s.null_fraction_above)} shuffles")
    if r.seed_ceiling is not None:
        c = r.seed_ceiling
        ratio = r.cross_over_ceiling
        lines.append(f"  seed-to-seed ceiling (two SAEs on {r.a.model}): fraction > {c.threshold}: "
                     f"{c.fraction_above:.1%} → cross-model / ceiling = {ratio:.2f}" if ratio is not None
                     else "  seed ceiling is 0")
    lines.append("  best pairs: " + ", ".join(f"{p.a}↔{p.b} {p.corr:.2f}" for p in r.top_pairs[:8]))
    return "\n".join(lines)


def matched_svg(series: list[tuple[str, MatchSummary]]) -> str:
    """Matched correlations (share of pairs per bin) of each matching against the pooled shuffled null."""
    fig, ax = plots._figure(5.2, 3.2)
    first = series[0][1]
    edges = list(first.histogram_edges)
    width = edges[1] - edges[0] if len(edges) > 1 else 0.1

    def share(counts):
        total = sum(counts)
        return [c / total if total else 0.0 for c in counts]

    if first.null_histogram and sum(first.null_histogram):
        ax.bar(edges[:-1], share(first.null_histogram), width=width, align="edge", color="#95a5a6", alpha=0.7,
               edgecolor="white", label=f"shuffled-word null ({len(first.null_fraction_above)} shuffles)")
    for k, (name, s) in enumerate(series):
        if s.histogram:
            ax.stairs(share(s.histogram), s.histogram_edges, lw=2,
                      color=plots.OBSERVED if k == 0 else plots.PALETTE[k % len(plots.PALETTE)],
                      label=f"{name} (mean {s.mean_matched_corr:.2f})")
    ax.axvline(first.threshold, color="#555", lw=1, ls="--", label=f"threshold {first.threshold:g}")
    ax.set_xlabel("matched correlation")
    ax.set_ylabel("share of matched pairs")
    plots._legend(ax)
    return plots.to_svg(fig)


def match_html(r: SAEMatch) -> Page:
    """The ``sae match`` report: distribution vs null, fraction above vs each shuffle, top pairs."""
    s = r.cross
    page = Page(f"SAE latent matching: {r.a.model} {r.a.hook} ↔ {r.b.model} {r.b.hook}",
                f"{s.n_words:,} aligned words from {r.texts} documents; {s.n_latents_a} × {s.n_latents_b} latents "
                f"kept; A: {r.a.sae}, B: {r.b.sae}")
    page.heading("Summary")
    rows = [["cross-model", s.n_matched, s.mean_matched_corr, s.quantiles.get("0.5"), s.fraction_above,
             s.null_mean_matched_corr, s.null_fraction_above_max, s.p_value]]
    if r.seed_ceiling is not None:
        c = r.seed_ceiling
        rows.append(["seed-to-seed ceiling", c.n_matched, c.mean_matched_corr, c.quantiles.get("0.5"),
                     c.fraction_above, c.null_mean_matched_corr, c.null_fraction_above_max, c.p_value])
    page.table(["matching", "pairs", "mean corr", "median corr", f"fraction > {s.threshold:g}", "null mean corr",
                "null fraction max", "p (shuffles)"], rows)
    if r.seed_ceiling is not None:
        page.paragraph("cross-model / seed ceiling (fraction above the threshold): "
                       + fmt(r.cross_over_ceiling) + ("" if r.cross_over_ceiling is not None
                                                      else " (the ceiling is 0)"))
    page.heading("Matched correlations against the null")
    series = [("cross-model", s)] + ([("seed ceiling", r.seed_ceiling)] if r.seed_ceiling is not None else [])
    page.figure("histogram", matched_svg(series),
                "Hungarian-matched correlations (share of pairs per bin) against the same matching with B's words "
                "shuffled within documents (all shuffles pooled).")
    if s.null_fraction_above:
        page.figure("histogram", plots.null_histogram(s.null_fraction_above, s.fraction_above, p_value=s.p_value,
                                                      xlabel=f"fraction of A's latents matched > {s.threshold:g}"),
                    "The observed fraction above the threshold against each shuffle's; p = (1 + shuffles at or "
                    "above it) / (1 + shuffles).")
    page.heading("Best-matched pairs")
    page.table(["latent A", "latent B", "correlation"], [[p.a, p.b, p.corr] for p in r.top_pairs], left=0)
    return page
