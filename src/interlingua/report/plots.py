"""Plots as inline SVG strings, drawn with matplotlib (no browser-side library, nothing fetched).

Each function takes plain numbers and returns the ``<svg>`` element of one figure, ready to be
placed in a page by :meth:`interlingua.report.html.Page.figure`. Figures are built with
``matplotlib.figure.Figure`` (no pyplot state) and ids in the SVG are salted per figure, so
several figures on one page never share an id. Text stays text (``svg.fonttype = none``).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402

OBSERVED = "#c0392b"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
_salt = itertools.count()


def _figure(width: float = 5.6, height: float = 3.4) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def to_svg(fig: Figure) -> str:
    """The ``<svg>`` element of ``fig`` (no XML prologue), with ids unique on the page."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"il{next(_salt)}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, **kw)


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def heatmap(values: Sequence[Sequence[float | None]], rows: Sequence[str], cols: Sequence[str], *,
            mark: tuple[int, int] | None = None, xlabel: str = "", ylabel: str = "", label: str = "",
            vmin: float | None = None, vmax: float | None = None) -> str:
    """A matrix with each cell's value written in it; ``mark`` (row, column) is outlined."""
    nan = float("nan")
    grid = [[nan if v is None else float(v) for v in row] for row in values]
    fig, ax = _figure(max(3.6, 1.0 + 0.75 * len(cols)), max(2.6, 0.9 + 0.42 * len(rows)))
    mesh = ax.pcolormesh(grid, cmap="viridis", vmin=vmin, vmax=vmax, edgecolors="white", linewidth=0.5)
    fig.colorbar(mesh, ax=ax, label=label, shrink=0.9)
    finite = _finite(v for row in grid for v in row)
    mid = (min(finite) + max(finite)) / 2 if finite else 0
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if math.isfinite(v):
                ax.text(j + 0.5, i + 0.5, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > mid else "white")
    if mark is not None:
        ax.add_patch(matplotlib.patches.Rectangle((mark[1], mark[0]), 1, 1, fill=False, edgecolor=OBSERVED,
                                                  linewidth=2.5))
    ax.set_xticks([j + 0.5 for j in range(len(cols))], list(cols), rotation=45, ha="right", fontsize=8)
    ax.set_yticks([i + 0.5 for i in range(len(rows))], list(rows), fontsize=8)
    ax.invert_yaxis()  # the first row on top, as in a table
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["left", "bottom"]].set_visible(False)
    return to_svg(fig)


def null_histogram(runs: Sequence[float], observed: float | None, *, p_value: float | None = None,
                   xlabel: str = "", band: Sequence[float] | None = None) -> str:
    """The null distribution's runs as a histogram, the observed value as a line, its p-value in the legend."""
    fig, ax = _figure(4.6, 2.8)
    values = _finite(runs)
    if values:
        ax.hist(values, bins=min(30, max(5, len(values) // 6)), color="#95a5a6", edgecolor="white",
                label=f"null ({len(values)} draws)")
    if band is not None and len(band) == 2:
        ax.axvspan(band[0], band[1], color="#bdc3c7", alpha=0.35, lw=0, label="null band")
    if observed is not None and math.isfinite(observed):
        text = f"observed {observed:.3f}" + ("" if p_value is None else f", p = {p_value:.3g}")
        ax.axvline(observed, color=OBSERVED, lw=2, label=text)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("null draws")
    _legend(ax, loc="upper left")
    return to_svg(fig)


def scatter(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str = "", ylabel: str = "",
            colors: Mapping[str, str] | None = None, zero_lines: bool = True) -> str:
    """Points of each named series (x, y); dashed lines at 0 (each model's own threshold) by default."""
    fig, ax = _figure(4.6, 3.6)
    for k, (name, (x, y)) in enumerate(series.items()):
        ax.scatter(list(x), list(y), s=14, alpha=0.75, color=(colors or {}).get(name, PALETTE[k % len(PALETTE)]),
                   label=f"{name} ({len(x)})", linewidths=0)
    if zero_lines:
        ax.axhline(0, color="#999", lw=0.8, ls="--")
        ax.axvline(0, color="#999", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend(ax)
    return to_svg(fig)


def lines(series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]], *, xlabel: str = "",
          ylabel: str = "", hlines: Mapping[str, float] | None = None, logx: bool = False,
          width: float = 5.6, height: float = 3.4) -> str:
    """One line (with markers) per named series; ``hlines`` draws labelled horizontal references."""
    fig, ax = _figure(width, height)
    for k, (name, (x, y)) in enumerate(series.items()):
        pts = [(float(a), float(b)) for a, b in zip(x, y) if b is not None and math.isfinite(float(b))]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=4, lw=1.6, color=PALETTE[k % len(PALETTE)], label=name)
    for k, (name, value) in enumerate((hlines or {}).items()):
        if value is not None and math.isfinite(value):
            ax.axhline(value, color=PALETTE[(k + 5) % len(PALETTE)], lw=1, ls="--", label=name)
    if logx:
        ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend(ax)
    return to_svg(fig)


def bars(labels: Sequence[str], values: Sequence[float | None], *, xlabel: str = "", ylabel: str = "",
         errors: Sequence[Sequence[float] | None] | None = None, reference: float | None = None,
         log: bool = False) -> str:
    """Vertical bars (one per label), optional intervals ``[lo, hi]`` and a dashed reference line."""
    fig, ax = _figure(max(3.6, 1.2 + 0.45 * len(labels)), 3.2)
    ys = [float("nan") if v is None else float(v) for v in values]
    ax.bar(range(len(ys)), [0 if math.isnan(v) else v for v in ys], color=PALETTE[0], width=0.7)
    if errors:
        for i, (y, ci) in enumerate(zip(ys, errors)):
            if ci is not None and not math.isnan(y):
                ax.plot([i, i], ci, color="black", lw=1.2)
    if reference is not None:
        ax.axhline(reference, color=OBSERVED, lw=1, ls="--")
    if log:
        ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), list(labels), rotation=45 if len(labels) > 6 else 0,
                  ha="right" if len(labels) > 6 else "center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return to_svg(fig)


def histogram(values: Sequence[float], *, bins: int = 30, xlabel: str = "", ylabel: str = "count",
              log: bool = False) -> str:
    """A plain histogram (e.g. the density of SAE latents on a log scale)."""
    fig, ax = _figure(4.6, 2.8)
    vals = _finite(values)
    if vals:
        ax.hist(vals, bins=bins, color=PALETTE[0], edgecolor="white")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return to_svg(fig)
