"""The classic figures, drawn from the same (memoised) runs as the checks they illustrate.

Each figure is registered with the checks it belongs to, and is drawn when one of them ran, so
that ``--all`` (which runs every check first) draws them all from results already in memory.
A drawing function returns :class:`ToyFigure` objects (a ``matplotlib.figure.Figure``, no pyplot
state): :func:`write_figures` saves them as PNG files and the report of ``toy reproduce``
(:mod:`interlingua.report.toy`) embeds the same figures as inline SVG.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import torch

from interlingua import _io

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402

VIRIDIS = matplotlib.colormaps["viridis"]


@dataclass
class ToyFigure:
    """One drawn figure: the PNG file name it is saved as, the plot kind of the report, a caption."""

    file: str
    fig: Figure
    kind: str
    caption: str = ""


Draw = Callable[[int, set[str]], list[ToyFigure]]
FIGURES: dict[str, tuple[tuple[str, ...], Draw]] = {}


def figure(*checks: str):
    """Register a drawing function for the figure of ``checks`` (the first one that ran decides)."""
    def register(fn: Draw) -> Draw:
        FIGURES[fn.__name__] = (checks, fn)
        return fn
    return register


def _done(fig: Figure, file: str, kind: str, caption: str = "") -> ToyFigure:
    if fig.get_layout_engine() is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.tight_layout()
    return ToyFigure(file, fig, kind, caption)


@figure("tms_intro_n5_m2_sweep", "tms_intro_n5_m2")
def tms_intro_n5_m2(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy.suite import intro_pair, intro_sweep

    levels = intro_sweep(seeds) if "tms_intro_n5_m2_sweep" in ran else intro_pair(seeds)
    cols = min(5, len(levels))
    rows = -(-len(levels) // cols)
    fig, axes = _subplots(rows, cols, figsize=(2.6 * cols, 3.1 * rows), squeeze=False, layout="constrained")
    for ax, lv in zip(axes.flat, levels):
        for i, (x, y) in enumerate(lv.W.tolist()):
            ax.plot([0, x], [0, y], color=VIRIDIS(i / 4), lw=2)
            ax.plot([x], [y], "o", color=VIRIDIS(i / 4), ms=4)
        ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal", xticks=[], yticks=[],
               title=f"1−S = {lv.probability:.3g}")
    for ax in list(axes.flat)[len(levels):]:
        ax.axis("off")
    fig.suptitle("TMS n=5, m=2: columns of W (colour = importance rank, yellow = least important)")
    return [_done(fig, "tms_intro_n5_m2.png", "lines",
                  "TMS n=5, m=2: the columns of W at each sparsity (pentagon in superposition when sparse).")]


@figure("tms_sparsity_sweep_n20_m5", "tms_importance_allocation")
def tms_sparsity_n20_m5(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy import metrics as M
    from interlingua.toy.suite import sparsity_sweep

    levels = sparsity_sweep(seeds)
    fig, (ax, bx) = _subplots(1, 2, figsize=(11, 4))
    for j, lv in enumerate(levels):
        d = M.feature_dimensionality(lv.W)
        ax.scatter([1 / lv.probability] * len(d), d, s=14, color=VIRIDIS(j / len(levels)))
    ax.set(xscale="log", xlabel="1 / (1 − S)", ylabel="D_i", title="feature dimensionality vs sparsity")
    for frac in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
        ax.axhline(frac, lw=0.5, color="grey")
    for j, lv in enumerate(levels):
        bx.plot(M.feature_norms(lv.W).tolist(), "o-", ms=3, color=VIRIDIS(j / len(levels)),
                label=f"1−S={lv.probability:g}")
    bx.set(xlabel="feature (importance 0.7^i)", ylabel="‖W_i‖", title="which features are represented")
    bx.legend(fontsize=7)
    fig.suptitle("TMS n=20, m=5")
    return [_done(fig, "tms_sparsity_n20_m5.png", "scatter",
                  "TMS n=20, m=5: feature dimensionality against sparsity (sticky fractions), and which features are represented.")]


@figure("tms_feature_geometry_n200_m20")
def tms_feature_geometry_n200_m20(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy import metrics as M
    from interlingua.toy.suite import geometry_sweep

    levels = geometry_sweep()
    fig, ax = _subplots(figsize=(7, 4.5))
    x = [1 / lv.probability for lv in levels]
    for xi, lv in zip(x, levels):
        d = M.feature_dimensionality(lv.W)
        ax.scatter(xi * (1 + 0.04 * torch.randn(len(d), generator=torch.Generator().manual_seed(0))).numpy(),
                   d.numpy(), s=5, alpha=0.4, color="tab:blue")
    ax.plot(x, [M.dimensions_per_feature(lv.W) for lv in levels], "k-o", label="D* = m/‖W‖²_F")
    for frac in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
        ax.axhline(frac, lw=0.5, color="grey")
    ax.set(xscale="log", xlabel="1 / (1 − S)", ylabel="D_i", title="TMS n=200, m=20: feature dimensionality")
    ax.legend()
    return [_done(fig, "tms_feature_geometry_n200_m20.png", "scatter",
                  "TMS n=200, m=20: per-feature dimensionality D_i and D* against sparsity.")]


@figure("tms_phase_diagram_grid")
def tms_phase_diagram(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy.suite import PHASE_P, PHASE_R, phase_grid

    grid = phase_grid(max(seeds, 3))
    code = {"-": 0, "D": 1, "S": 2, "?": 3, "0": 3}
    image = torch.tensor([[code[grid[(p, r)][1]] for r in PHASE_R] for p in PHASE_P], dtype=torch.float64)
    fig, ax = _subplots(figsize=(5.5, 4.5))
    from matplotlib.colors import ListedColormap

    ax.imshow(image.numpy(), cmap=ListedColormap(["#d9d9d9", "#4c72b0", "#dd8452", "#000000"]), vmin=0, vmax=3)
    for a, p in enumerate(PHASE_P):
        for b, r in enumerate(PHASE_R):
            seeds_kinds, best = grid[(p, r)]
            ax.text(b, a, f"{best}\n{''.join(seeds_kinds)}", ha="center", va="center", fontsize=8)
    ax.set(xticks=range(len(PHASE_R)), xticklabels=[f"{r:g}" for r in PHASE_R], yticks=range(len(PHASE_P)),
           yticklabels=[f"{p:g}" for p in PHASE_P], xlabel="relative importance of feature 2",
           ylabel="feature density 1 − S",
           title="n=2, m=1: − absent, D dedicated, S antipodal\n(big: lowest-loss seed; small: each seed)")
    return [_done(fig, "tms_phase_diagram_n2_m1.png", "heatmap",
                  "Phase diagram n=2, m=1: absent, dedicated or antipodal (superposed) second feature.")]


@figure("sae_dictionary_sweep", "sae_recovers_planted")
def sae_dictionary_sweep(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy.suite import SAE_ALPHAS, SAE_RATIOS, _sae_cell

    alphas = SAE_ALPHAS if "sae_dictionary_sweep" in ran else (1.0,)
    ratios = SAE_RATIOS if "sae_dictionary_sweep" in ran else (0.5, 2.0)
    fig, (ax, bx) = _subplots(1, 2, figsize=(10, 4))
    for a in alphas:
        cells = [_sae_cell(k, a) for k in ratios]
        ax.plot(ratios, [c["mmcs"] for c in cells], "o-", label=f"α={a:g}")
        bx.plot(ratios, [c["dead"] for c in cells], "o-", label=f"α={a:g}")
    ax.axhline(0.97, ls=":", color="grey")
    for axis in (ax, bx):
        axis.set(xscale="log", xlabel="dictionary size k / N")
        axis.set_xticks(ratios, [f"{k:g}" for k in ratios])
        axis.minorticks_off()
    ax.set(ylabel="MMCS to the planted features", title="recovery (Sharkey et al. Fig. 3)")
    bx.set(ylabel="share of dead latents", title="dead latents (Fig. 4)")
    ax.legend(), bx.legend()
    return [_done(fig, "sae_dictionary_sweep.png", "lines",
                  "Sparse dictionary learning: recovery (MMCS) and dead latents against dictionary size.")]


@figure("s_curve_four_modes", "s_curve_plateaus")
def s_curves(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy.suite import s_curve

    if "s_curve_four_modes" in ran:
        strengths, runs = (3.0, 2.0, 1.0, 0.5), [(e, s_curve((3.0, 2.0, 1.0, 0.5), e, 4000)) for e in (1e-3, 1e-5)]
    else:
        strengths, runs = (3.0, 1.0), [(e, s_curve((3.0, 1.0), e)) for e in (1e-2, 1e-4)]
    fig, axes = _subplots(1, len(runs), figsize=(5 * len(runs), 3.8), squeeze=False)
    for ax, (eps, dyn) in zip(axes.flat, runs):
        for j, s in enumerate(strengths):
            ax.plot(dyn.times.numpy(), (dyn.strength[:, j] / s).numpy(), label=f"s={s:g}")
        ax.set(xlabel="time (lr × steps)", ylabel="learned strength / target", title=f"init scale ε={eps:g}")
        ax.legend()
    fig.suptitle("S-curves: rank-r U Vᵀ learning Σ s_k a_k b_kᵀ (plateau ≈ ln(1/ε)/s)")
    return [_done(fig, "s_curves.png", "lines",
                  "S-curves: each mode is learned after a plateau of about ln(1/ε)/s.")]


@figure("memorisation_geometry_sweep", "memorisation_geometry")
def memorisation(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy.suite import memorise

    Ts = ((3, 4000), (5, 4000), (10, 4000)) if "memorisation_geometry_sweep" in ran else ((5, 3000), (10, 3000))
    fig, axes = _subplots(1, len(Ts), figsize=(3.6 * len(Ts), 3.8), squeeze=False)
    for ax, (T, steps) in zip(axes.flat, Ts):
        H = memorise(T, seeds, steps)["H"]
        lim = float(H.abs().max()) * 1.2 + 1e-9
        for x, y in H.tolist():
            ax.plot([0, x], [0, y], color="tab:red", lw=1.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[], title=f"T = {T}")
    fig.suptitle("Memorisation (n=1000, m=2): hidden vectors of the T training points")
    return [_done(fig, "memorisation_m2.png", "lines",
                  "Memorisation (n=1000, m=2): the hidden vectors of the T training points form a regular polygon.")]


@figure("engineering_monosemanticity_sweep", "engineering_monosemanticity")
def engineering_monosemanticity(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy.suite import WORLD, _em_model

    n = WORLD.n_features
    widths = (n // 2, n, 2 * n, 4 * n, 8 * n) if "engineering_monosemanticity_sweep" in ran else (n, 8 * n)
    rows = [_em_model(k, 2) for k in widths]
    fig, (ax, bx) = _subplots(1, 2, figsize=(10, 4))
    ax.plot(widths, [r["feature_coverage"] for r in rows], "o-", label="features with a monosemantic neuron")
    ax.plot(widths, [r["monosemantic_fraction"] for r in rows], "s-", label="monosemantic share of live neurons")
    ax.set(xscale="log", xlabel="neurons k", ylabel="share", title=f"N={n} features, d={WORLD.input_dim}")
    ax.set_xticks(widths, [str(k) for k in widths])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    traj = rows[-1]["trajectory"]
    bx.plot([t["step"] for t in traj], [t["monosemantic_fraction"] for t in traj], "o-", label="monosemantic share")
    bx.plot([t["step"] for t in traj], [-t["mean_bias"] for t in traj], "s-", label="− mean bias")
    bx.plot([t["step"] for t in traj], [10 * t["relative_loss"] for t in traj], "^-", label="10 × relative loss")
    bx.set(xlabel="step", title=f"k={widths[-1]}: loss flattens, monosemanticity keeps rising")
    bx.legend(fontsize=8)
    fig.suptitle("Engineering Monosemanticity (feature decoder)")
    return [_done(fig, "engineering_monosemanticity.png", "lines",
                  "Engineering monosemanticity: coverage and monosemantic share against width; the training trajectory.")]


@figure("cross_model_correspondence", "cross_model_correspondence_seeds")
def cross_model(seeds: int, ran: set[str]) -> list[ToyFigure]:
    from interlingua.toy import metrics as M
    from interlingua.toy.crossmodel import random_projected, trained_projected, unit_profiles
    from interlingua.toy.suite import KAPPA, WORLD, XM_WIDTHS

    A = trained_projected(WORLD, XM_WIDTHS[0], 1)[0]
    x = WORLD.sample(4096, 1001)
    fig, axes = _subplots(1, 2, figsize=(12, 5), layout="constrained")
    for ax, (name, B) in zip(axes, (("trained B", trained_projected(WORLD, XM_WIDTHS[1], 2)[0]),
                                    ("random-init B", random_projected(WORLD, XM_WIDTHS[1], 3)))):
        with torch.no_grad():
            C = M.correlation_matrix(A.hidden(x), B.hidden(x))

        def order(model) -> torch.Tensor:
            prof = unit_profiles(model.hidden, WORLD.n_features)
            key = torch.where(M.represented_features(prof, KAPPA).any(1), prof.argmax(1).double(),
                              torch.full((len(prof),), float(WORLD.n_features)))
            return torch.argsort(key, stable=True)

        im = ax.imshow(C[order(A)][:, order(B)].numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set(title=f"A (k={XM_WIDTHS[0]}) × {name} (k={XM_WIDTHS[1]})", xlabel="B units (by represented feature)",
               ylabel="A units (by represented feature; polysemantic last)")
    fig.colorbar(im, ax=axes.tolist(), shrink=0.8, label="activation correlation")
    return [_done(fig, "cross_model_correlation.png", "heatmap",
                  "Unit-by-unit activation correlation of two toy models: trained B against random-init B.")]


def _subplots(*args, **kw):
    """``pyplot.subplots`` on a bare :class:`Figure` (no global state): ``(fig, axes)``."""
    fig = Figure(figsize=kw.pop("figsize", None), layout=kw.pop("layout", None))
    return fig, fig.subplots(*args, **kw)


def draw_figures(seeds: int, ran: Iterable[str] | None = None) -> list[ToyFigure]:
    """The figures of the checks in ``ran`` (every figure when ``None``), drawn in registration order."""
    from interlingua.toy.suite import CHECKS

    ran_set = set(CHECKS) if ran is None else set(ran)
    drawn: list[ToyFigure] = []
    for checks, draw in FIGURES.values():
        if ran_set & set(checks):
            drawn += draw(seeds, ran_set)
    return drawn


def save_figures(figures: Iterable[ToyFigure], out: str | Path) -> list[str]:
    """Write each figure as ``out/<file>`` (PNG, atomically); returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [str(_io.save_figure(f.fig, out / f.file, dpi=110)) for f in figures]


def write_figures(out: str | Path, seeds: int, ran: Iterable[str] | None = None) -> list[str]:
    """Draw the figures of the checks in ``ran`` (every figure when ``None``) into ``out``; returns the paths."""
    return save_figures(draw_figures(seeds, ran), out)
