"""Classic figures for the suite, written only where matplotlib is importable (it is not a dependency)."""

from __future__ import annotations

from pathlib import Path


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_figures(out: str | Path, seeds: int) -> list[str]:
    """The n=5, m=2 intro figure and the n=20, m=5 dimensionality-vs-sparsity figure; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interlingua.toy import metrics as M
    from interlingua.toy.suite import SWEEP, tms_sweep

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    levels = tms_sweep(5, 2, 0.9, (1.0, 0.05), seeds)
    fig, axes = plt.subplots(1, len(levels), figsize=(4 * len(levels), 4))
    for ax, lv in zip(axes, levels):
        for i, (x, y) in enumerate(lv.W.tolist()):
            ax.arrow(0, 0, x, y, color=plt.cm.viridis(i / 5), width=0.01, length_includes_head=True)
        ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal", title=f"p = {lv.probability:g}")
    fig.suptitle("TMS n=5, m=2: feature embeddings W_i (colour = importance rank)")
    written.append(out / "tms_intro_n5_m2.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    levels = tms_sweep(20, 5, 0.7, SWEEP, seeds)
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, lv in enumerate(levels):
        d = M.feature_dimensionality(lv.W)
        ax.scatter([1 / lv.probability] * len(d), d, s=12, color=plt.cm.viridis(j / len(levels)))
    ax.set(xscale="log", xlabel="1 / (1 − S)", ylabel="D_i", title="TMS n=20, m=5: feature dimensionality")
    for frac in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
        ax.axhline(frac, lw=0.5, color="grey")
    written.append(out / "tms_sparsity_n20_m5.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return [str(p) for p in written]
